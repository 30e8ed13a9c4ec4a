// Streams (PROTOCOL.md §6.1): stdin to `recv --out -` as it is read, with real processes, a
// real proxy that resets connections, and a reader of stdout slower than the sender.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BIN, hasCommand, itemRecords, tempDir } from './support/cli.js';
import { sha256File, writeRandom } from './support/files.js';
import { FaultProxy } from './support/proxy.js';

const USAGE = fileURLToPath(new URL('../bench/usage.js', import.meta.url));
const MiB = 1024 * 1024;
const fastRetries = ['--retry-delay', '0.05', '--timeout', '5'];

/** Bytes of output (and of input) kept to compare prefixes. */
const KEPT = 64 * MiB;

/** `bytes` of random input, produced as it is read, with the hash of all of it once read. */
function randomInput(bytes: number): { stream: Readable; sha256: Promise<string>; head: () => Buffer } {
  const hash = createHash('sha256');
  const kept: Buffer[] = [];
  let left = bytes;
  let done: (digest: string) => void = () => {};
  const sha256 = new Promise<string>((resolve) => {
    done = resolve;
  });
  const stream = new Readable({
    read() {
      if (left === 0) {
        done(hash.digest('hex'));
        this.push(null);
        return;
      }
      const piece = randomBytes(Math.min(left, MiB));
      if (bytes - left < KEPT) kept.push(piece);
      left -= piece.length;
      hash.update(piece);
      this.push(piece);
    },
  });
  return { stream, sha256, head: () => Buffer.concat(kept) };
}

interface Child {
  child: ChildProcess;
  stderr: () => string;
  /** stdout so far, as text (not for `recv --out -`, whose stdout the caller reads). */
  stdout: () => string;
  /** The port of a receiver, once it printed "listening on". */
  listening: Promise<number>;
  exited: Promise<number | null>;
  /** Peak RSS in KiB, written by the wrapper at exit. */
  peakRssKiB: () => Promise<number>;
}

/** Runs the CLI under bench/usage.js, which records its peak RSS; killed when the test ends. */
function cli(
  t: TestContext,
  dir: string,
  label: string,
  args: string[],
  stdin?: Readable,
  textStdout = true,
): Child {
  const rssFile = join(dir, `${label}.rss`);
  const child = spawn(process.execPath, [USAGE, rssFile, BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stderr = '';
  let stdout = '';
  if (textStdout) {
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
  }
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const listening = new Promise<number>((resolve, reject) => {
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      const match = /listening on 127\.0\.0\.1:(\d+)/.exec(stderr);
      if (match) resolve(Number(match[1]));
    });
    void exited.then(() => reject(new Error(`${label} exited: ${stderr}`)));
  });
  listening.catch(() => {}); // only receivers are asked
  if (stdin === undefined) child.stdin?.end();
  else {
    child.stdin?.on('error', () => {}); // the sender may exit before it read everything
    stdin.pipe(child.stdin as NodeJS.WritableStream);
  }
  return {
    child,
    stderr: () => stderr,
    stdout: () => stdout,
    listening,
    exited,
    peakRssKiB: async () => (JSON.parse(await readFile(rssFile, 'utf8')) as { rssKiB: number }).rssKiB,
  };
}

/** Starts `recv --out -` and reads its stdout, `slow`ly if asked; resolves its port. */
async function streamReceiver(t: TestContext, dir: string, args: string[], slow = false) {
  const receiver = cli(
    t,
    dir,
    'recv',
    ['recv', '--listen', '127.0.0.1:0', '--out', '-', ...args],
    undefined,
    false,
  );
  const hash = createHash('sha256');
  const out: Buffer[] = [];
  let bytes = 0;
  const stdout = receiver.child.stdout as Readable;
  stdout.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    bytes += chunk.length;
    if (bytes <= KEPT) out.push(chunk);
    if (slow) {
      // About 40 MB/s: slower than the sender, so stdout's pace must reach it through TCP.
      stdout.pause();
      setTimeout(() => stdout.resume(), Math.ceil(chunk.length / 40_000));
    }
  });
  const ended = new Promise<void>((resolve) => stdout.on('end', resolve));
  const port = await receiver.listening;
  return {
    ...receiver,
    port,
    output: async () => {
      await ended;
      return { sha256: hash.digest('hex'), bytes, head: Buffer.concat(out) };
    },
  };
}

/** Both ends exited 0, stdout holds exactly the input, and the sender's record says confirmed; returns that record. */
async function assertDelivered(
  sender: Child,
  receiver: Awaited<ReturnType<typeof streamReceiver>>,
  input: ReturnType<typeof randomInput>,
  size: number,
): Promise<Record<string, unknown>> {
  assert.equal(await sender.exited, 0, sender.stderr());
  assert.equal(await receiver.exited, 0, receiver.stderr());
  const output = await receiver.output();
  assert.equal(output.bytes, size);
  assert.equal(output.sha256, await input.sha256);
  const [item] = itemRecords(sender.stdout());
  assert.equal(item?.status, 'confirmed');
  return item as Record<string, unknown>;
}

describe('streams: stdin to stdout as it is read', { concurrency: 1 }, () => {
  test('300 MiB through `send -` and `recv --out -`: the same bytes, with both sides in bounded memory', async (t) => {
    const dir = await tempDir(t);
    const size = 300 * MiB;
    const receiver = await streamReceiver(t, dir, []);
    const input = randomInput(size);
    const sender = cli(t, dir, 'send', ['send', `127.0.0.1:${receiver.port}`, '-', '--json'], input.stream);
    const item = await assertDelivered(sender, receiver, input, size);
    assert.equal(item.bytes, size);
    // The default window is 16 MiB: neither side holds anything near the stream's size.
    for (const [side, child] of [
      ['sender', sender],
      ['receiver', receiver],
    ] as const) {
      const peak = await child.peakRssKiB();
      assert.ok(peak > 0 && peak < 160 * 1024, `${side} peak RSS ${Math.round(peak / 1024)} MiB`);
    }
  });

  test('connections reset three times mid-stream and a slow reader of stdout: every byte once, in order', async (t) => {
    const dir = await tempDir(t);
    const size = 64 * MiB;
    const receiver = await streamReceiver(t, dir, [], true);
    const proxy = await FaultProxy.start(t, { target: receiver.port });
    const input = randomInput(size);
    const sender = cli(
      t,
      dir,
      'send',
      ['send', `127.0.0.1:${proxy.port}`, '-', '--json', '--window', '4M', ...fastRetries],
      input.stream,
    );
    for (const at of [8, 24, 40]) {
      await proxy.waitForwarded(at * MiB);
      proxy.resetAll();
    }
    const item = await assertDelivered(sender, receiver, input, size);
    assert.ok((item.attempts as number) >= 4, `attempts ${item.attempts}`);
    assert.ok((item.resumedFrom as number) > 0, 'the last attempt resumed where stdout was');
  });

  test('a corrupted chunk is refused before it reaches stdout, and the stream resumes', async (t) => {
    const dir = await tempDir(t);
    const size = 8 * MiB;
    const receiver = await streamReceiver(t, dir, []);
    const proxy = await FaultProxy.start(t, { target: receiver.port, request: { corruptAt: 3 * MiB } });
    const input = randomInput(size);
    const sender = cli(
      t,
      dir,
      'send',
      ['send', `127.0.0.1:${proxy.port}`, '-', ...fastRetries],
      input.stream,
    );
    assert.equal(await sender.exited, 0, sender.stderr());
    // The receiver refused the chunk. The sender usually says so too, but not always: the proxy
    // resets a connection when the other one fails, and a reset that lands while the sender is
    // writing (`write ECONNRESET`) closes its socket before it reads the REJECT already there.
    assert.match(sender.stderr(), /attempt 1 failed: /);
    assert.equal(await receiver.exited, 0, receiver.stderr());
    assert.match(receiver.stderr(), /rejected stdin: CHUNK at offset \d+ failed its checksum/);
    const output = await receiver.output();
    assert.equal(output.sha256, await input.sha256);
  });

  for (const spool of [false, true]) {
    test(`a stream cut for good${spool ? ' (recv --spool)' : ''}: both sides exit non-zero, and stdout holds ${spool ? 'nothing' : 'an exact prefix'}`, async (t) => {
      const dir = await tempDir(t);
      const size = 48 * MiB;
      const receiver = await streamReceiver(t, dir, ['--idle-timeout', '2', ...(spool ? ['--spool'] : [])]);
      const proxy = await FaultProxy.start(t, { target: receiver.port });
      const input = randomInput(size);
      const sender = cli(
        t,
        dir,
        'send',
        ['send', `127.0.0.1:${proxy.port}`, '-', '--retries', '1', '--window', '4M', ...fastRetries],
        input.stream,
      );
      await proxy.waitForwarded(12 * MiB);
      proxy.close();
      assert.equal(await sender.exited, 75, sender.stderr());
      assert.match(sender.stderr(), /not confirmed/);
      assert.equal(await receiver.exited, 75, receiver.stderr());
      const output = await receiver.output();
      const written = Number(/(\d+) bytes were written to stdout/.exec(receiver.stderr())?.[1]);
      assert.equal(written, output.bytes, receiver.stderr());
      if (spool) assert.equal(output.bytes, 0);
      else {
        assert.ok(output.bytes > 0 && output.bytes < size, `${output.bytes} bytes written before the cut`);
        assert.ok(output.head.equals(input.head().subarray(0, output.bytes)), 'stdout is a prefix of stdin');
      }
    });
  }

  test('stdin redirected from a file is sent from where its offset stands, a MiB per read', {
    skip: hasCommand('strace', '-V') ? false : 'strace is not installed (.ci/run installs it where it can)',
  }, async (t) => {
    const dir = await tempDir(t);
    const file = join(dir, 'input.bin');
    await writeRandom(file, 5 * MiB + 1000);
    const receiver = await streamReceiver(t, dir, ['--once']);
    // `(head -c 1000 >/dev/null; ackship send HOST -) < input.bin`: the first 1000 bytes are gone.
    const input = openSync(file, 'r');
    t.after(() => closeSync(input));
    readSync(input, Buffer.alloc(1000), 0, 1000, null);
    const trace = join(dir, 'reads.trace');
    const sender = spawn(
      'strace',
      // One file per thread (-ff): no call is split across lines by another thread's.
      [
        '-ff',
        '-e',
        'trace=read',
        '-o',
        trace,
        process.execPath,
        BIN,
        'send',
        `127.0.0.1:${receiver.port}`,
        '-',
      ],
      { stdio: [input, 'ignore', 'pipe'] },
    );
    t.after(() => {
      if (sender.exitCode === null && sender.signalCode === null) sender.kill('SIGKILL');
    });
    let stderr = '';
    sender.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const code = await new Promise<number | null>((resolve) => sender.on('close', resolve));
    assert.equal(code, 0, stderr);
    assert.equal(await receiver.exited, 0, receiver.stderr());
    const output = await receiver.output();
    const expected = (await readFile(file)).subarray(1000);
    assert.equal(output.bytes, expected.length);
    assert.equal(output.sha256, createHash('sha256').update(expected).digest('hex'));
    // Each read of stdin asks for a whole CHUNK: 64 KiB reads would make 16 times the frames.
    const traces = (await readdir(dir)).filter((name) => name.startsWith('reads.trace.'));
    const text = (await Promise.all(traces.map((name) => readFile(join(dir, name), 'utf8')))).join('\n');
    const asked = [...text.matchAll(/^read\(0, .*, (\d+)\) = \d+/gm)].map((m) => Number(m[1]));
    assert.ok(asked.length >= 5, `reads of stdin seen: ${asked.length}`);
    assert.deepEqual(new Set(asked), new Set([MiB]));
  });

  test('a receiver older than streams (v2) gets stdin spooled and sent as a file, unasked', async (t) => {
    const dir = await tempDir(t);
    const out = join(dir, 'out');
    const receiver = cli(t, dir, 'recv', ['recv', '--listen', '127.0.0.1:0', '--out', out, '--once']);
    const proxy = await FaultProxy.start(t, { target: await receiver.listening, capVersion: 2 });
    const input = randomInput(3 * MiB);
    const sender = cli(
      t,
      dir,
      'send',
      ['send', `127.0.0.1:${proxy.port}`, '-', '--name', 'old.bin', '--json'],
      input.stream,
    );
    assert.equal(await sender.exited, 0, sender.stderr());
    assert.equal(await receiver.exited, 0, receiver.stderr());
    assert.equal(itemRecords(sender.stdout())[0]?.bytes, 3 * MiB);
    assert.equal(await sha256File(join(out, 'old.bin')), await input.sha256);
  });

  test('a stream into a directory survives a receiver killed mid-stream and started again', async (t) => {
    const dir = await tempDir(t);
    const out = join(dir, 'out');
    const size = 48 * MiB;
    const first = cli(t, dir, 'recv1', ['recv', '--listen', '127.0.0.1:0', '--out', out]);
    const proxy = await FaultProxy.start(t, { target: await first.listening, rate: 16 * MiB });
    const input = randomInput(size);
    const sender = cli(
      t,
      dir,
      'send',
      ['send', `127.0.0.1:${proxy.port}`, '-', '--name', 'piped.bin', '--json', ...fastRetries],
      input.stream,
    );
    await proxy.waitForwarded(size / 3);
    first.child.kill('SIGKILL');
    await first.exited;
    const second = cli(t, dir, 'recv2', ['recv', '--listen', '127.0.0.1:0', '--out', out, '--once']);
    proxy.retarget(await second.listening);
    assert.equal(await sender.exited, 0, sender.stderr());
    assert.equal(await second.exited, 0, second.stderr());
    const [item] = itemRecords(sender.stdout());
    assert.ok((item?.resumedFrom as number) > 0, 'resumed from what the first receiver had fsynced');
    const placed = await sha256File(join(out, 'piped.bin'));
    assert.equal(placed, await input.sha256);
  });
});
