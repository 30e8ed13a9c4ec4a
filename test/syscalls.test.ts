// The receiver's system calls, seen from outside with strace (skipped, saying why, without it):
// the order of durability is checked, not assumed, and a failing fsync or rename injected into
// a real receiver never yields a confirmation, while the retry succeeds once the fault is gone.
// And one of the sender's: its connection opens while it still reads the tree.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import { loadHasher, xxh64 } from '../src/hash.js';
import type { Frame, OfferFrame } from '../src/protocol/codec.js';
import { ErrorCode, Kind, RejectCode } from '../src/protocol/constants.js';
import { BIN, type Finished, hasCommand, itemRecords, run, startReceiver, tempDir } from './support/cli.js';
import { sha256File, writeRandom } from './support/files.js';
import { offerFrame, rawSender, sendItem, show } from './support/raw-sender.js';

await loadHasher();

const MiB = 1024 * 1024;

const skip = hasCommand('strace', '-V')
  ? false
  : 'strace is not installed (.ci/run installs it where it can)';

/**
 * `ackship recv ARGS` under `strace STRACE_ARGS`, with one file-system thread unless `threads`
 * says otherwise; resolves its port once it listens.
 */
async function tracedReceiver(t: TestContext, straceArgs: string[], args: string[], threads = 1) {
  const child = spawn(
    'strace',
    ['-f', ...straceArgs, process.execPath, BIN, 'recv', '--listen', '127.0.0.1:0', ...args],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      // strace counts `when=N` per thread: with one file-system thread, "the first fsync" is one call.
      env: { ...process.env, UV_THREADPOOL_SIZE: String(threads) },
    },
  );
  t.after(() => {
    // The whole group: a killed strace leaves its tracee running, holding the test's pipes open.
    if (child.exitCode === null && child.signalCode === null) process.kill(-(child.pid as number), 'SIGKILL');
  });
  let stderr = '';
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk;
  });
  const exited = new Promise<Finished>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  const port = await new Promise<number>((resolve, reject) => {
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk;
      const match = /listening on 127\.0\.0\.1:(\d+)/.exec(stderr);
      if (match) resolve(Number(match[1]));
    });
    void exited.then(() => reject(new Error(`strace or recv exited: ${stderr}`)));
  });
  return { port, exited, stdout: () => stdout };
}

interface Call {
  name: string;
  /** What strace printed of the arguments (with -y, file descriptors carry their paths). */
  args: string;
  /** Lines of the trace where the call started and where it returned. */
  started: number;
  returned: number;
}

/** The calls of an `strace -f -y -o FILE` trace, joining calls split across threads. */
function parseTrace(text: string): Call[] {
  const calls: Call[] = [];
  const pending = new Map<string, Call>();
  text.split('\n').forEach((line, index) => {
    const whole = /^(\d+)\s+(\w+)\((.*)\)\s+= /.exec(line);
    const unfinished = /^(\d+)\s+(\w+)\((.*) <unfinished \.\.\.>$/.exec(line);
    const resumed = /^(\d+)\s+<\.\.\. (\w+) resumed>/.exec(line);
    if (whole) {
      calls.push({ name: whole[2] as string, args: whole[3] as string, started: index, returned: index });
    } else if (unfinished) {
      const call = {
        name: unfinished[2] as string,
        args: unfinished[3] as string,
        started: index,
        returned: -1,
      };
      pending.set(`${unfinished[1]} ${call.name}`, call);
      calls.push(call);
    } else if (resumed) {
      const call = pending.get(`${resumed[1]} ${resumed[2]}`);
      if (call) call.returned = index;
    }
  });
  return calls;
}

function find(calls: Call[], what: string, test: (call: Call) => boolean): Call {
  const call = calls.find(test);
  assert.ok(call, `the trace shows ${what}`);
  return call;
}

describe('system calls of a real receiver', { skip }, () => {
  test('fsync of the file, the journal, the rename and the directory fsync all return before the CONFIRM is written', async (t) => {
    const dir = await tempDir(t);
    const out = join(dir, 'out');
    const traceFile = join(dir, 'trace.txt');
    const receiver = await tracedReceiver(
      t,
      ['-y', '-e', 'trace=fsync,fdatasync,link,rename,write,writev', '-o', traceFile],
      ['--out', out, '--once', '--overwrite'],
    );
    const src = join(dir, 'traced.bin');
    await writeRandom(src, 100_000);
    const sent = await run(t, ['send', `127.0.0.1:${receiver.port}`, src], {
      env: { ACKSHIP_STATE_DIR: join(dir, 's') },
    });
    assert.equal(sent.code, 0, sent.stderr);
    assert.equal((await receiver.exited).code, 0);
    const calls = parseTrace(await readFile(traceFile, 'utf8'));
    const part = find(
      calls,
      "the part's fsync",
      (c) => c.name === 'fsync' && /\/\.ackship\/parts\/[0-9a-f]{32}>/.test(c.args),
    );
    const journal = find(
      calls,
      "the journal's fsync",
      (c) => c.name === 'fsync' && c.args.includes('confirmed.jsonl>'),
    );
    const rename = find(
      calls,
      'the rename into place',
      (c) => c.name === 'rename' && c.args.includes(`"${join(out, 'traced.bin')}"`),
    );
    const dirSync = find(
      calls,
      "the directory's fsync",
      // The one after the rename: the receiver also syncs DIR once at start, for its state dir.
      (c) => c.name === 'fsync' && c.args.endsWith(`<${out}>`) && c.started > rename.started,
    );
    // CONFIRM on the wire: kind 0x06, body length 36 ("$").
    const confirm = find(
      calls,
      'the CONFIRM written to the socket',
      (c) => /^\d+<(socket|TCP)/.test(c.args) && c.args.includes('"\\6\\0\\0\\0$'),
    );
    const order = [part, journal, rename, dirSync];
    for (const call of order) assert.ok(call.returned >= 0, `${call.name}(${call.args}) returned`);
    for (let i = 1; i < order.length; i++) {
      const [a, b] = [order[i - 1] as Call, order[i] as Call];
      assert.ok(a.returned < b.started, `${a.name}(${a.args}) returned before ${b.name}(${b.args}) started`);
    }
    assert.ok(
      dirSync.returned < confirm.started,
      'the directory fsync returned before the CONFIRM was written',
    );
  });

  test("a large file's part is written back while it arrives, so the commit's fsync has only the tail", async (t) => {
    const dir = await tempDir(t);
    const out = join(dir, 'out');
    const traceFile = join(dir, 'trace.txt');
    const receiver = await tracedReceiver(
      t,
      ['-y', '-e', 'trace=fsync,fdatasync', '-o', traceFile],
      ['--out', out, '--once'],
    );
    const src = join(dir, 'large.bin');
    await writeRandom(src, 100 * MiB);
    const sent = await run(t, ['send', `127.0.0.1:${receiver.port}`, src], {
      env: { ACKSHIP_STATE_DIR: join(dir, 's') },
    });
    assert.equal(sent.code, 0, sent.stderr);
    assert.equal((await receiver.exited).code, 0);
    const onPart = (c: Call) => /\/\.ackship\/parts\/[0-9a-f]{32}>/.test(c.args);
    const calls = parseTrace(await readFile(traceFile, 'utf8'));
    const final = find(calls, "the part's fsync", (c) => c.name === 'fsync' && onPart(c));
    const early = calls.filter((c) => c.name === 'fdatasync' && onPart(c));
    // One each 32 MiB of the 100, each done before the commit's fsync began.
    assert.ok(early.length >= 3, `background flushes of the part: ${early.length}`);
    for (const call of early) assert.ok(call.returned >= 0 && call.returned < final.started);
    assert.equal(await sha256File(join(out, 'large.bin')), await sha256File(src));
  });

  test("a part's writes are made one at a time, however many threads could make them", async (t) => {
    const dir = await tempDir(t);
    const out = join(dir, 'out');
    const traceFile = join(dir, 'trace.txt');
    const receiver = await tracedReceiver(
      t,
      // Each write slowed down, so that more data comes while one is under way.
      ['-y', '-e', 'trace=pwrite64,pwritev', '-e', 'inject=pwritev:delay_enter=100000', '-o', traceFile],
      ['--out', out, '--once'],
      16,
    );
    const src = join(dir, 'large.bin');
    await writeRandom(src, 24 * MiB);
    const sent = await run(t, ['send', `127.0.0.1:${receiver.port}`, src], {
      env: { ACKSHIP_STATE_DIR: join(dir, 's') },
    });
    assert.equal(sent.code, 0, sent.stderr);
    assert.equal((await receiver.exited).code, 0);
    const writes = parseTrace(await readFile(traceFile, 'utf8')).filter((c) =>
      /\/\.ackship\/parts\/[0-9a-f]{32}>/.test(c.args),
    );
    assert.ok(writes.length > 1, `writes of the part: ${writes.length}`);
    // In the order they started, each returned before the next began.
    for (const [i, write] of writes.entries()) {
      const next = writes[i + 1];
      if (next !== undefined)
        assert.ok(write.returned >= 0 && write.returned < next.started, `write ${i} overlaps the next`);
    }
    assert.equal(await sha256File(join(out, 'large.bin')), await sha256File(src));
  });

  test('a session busy committing when its idle timeout first fires is still timed out once idle', {
    timeout: 60_000,
  }, async (t) => {
    const dir = await tempDir(t);
    // Every fsync takes 1.5 s: the commit outlasts the 1 s idle timeout.
    const receiver = await tracedReceiver(
      t,
      ['-e', 'trace=fsync', '-e', 'inject=fsync:delay_exit=1500000', '-o', '/dev/null'],
      ['--out', join(dir, 'out'), '--idle-timeout', '1'],
    );
    const peer = await rawSender(t, receiver.port);
    const confirm = await sendItem(peer, 'slow.txt', Buffer.from('slow to commit'));
    assert.equal(confirm?.kind, Kind.Confirm);
    // §4.14: a commit of several seconds (three fsyncs of 1.5 s) is told to a v5 sender as it goes.
    assert.ok(peer.working > 0, 'WORKING while the commit was under way');
    // Now nothing is in flight: the next idle timeout must end the session.
    const [, , timedOut] = await peer.frames(3);
    assert.ok(timedOut?.kind === Kind.Error && timedOut.code === ErrorCode.Timeout, show(timedOut));
    await peer.closed;
  });

  for (const fault of [
    // The third fsync is the part's: the receiver syncs its state dir and DIR once at start.
    { syscall: 'fsync', when: 3, args: [] as string[], reason: /receiver could not store the item: EIO/ },
    { syscall: 'rename', when: 1, args: ['--overwrite'], reason: /receiver could not store the item: EIO/ },
    // The first fdatasync is the background flush of a large file's part, mid-item.
    {
      syscall: 'fdatasync',
      when: 1,
      args: [],
      size: 80 * MiB,
      reason: /receiver rejected precious\.bin: .*EIO/,
    },
  ]) {
    test(`a failing ${fault.syscall} is no confirmation; the retry succeeds once the fault is gone`, async (t) => {
      const dir = await tempDir(t);
      const out = join(dir, 'out');
      const receiver = await tracedReceiver(
        t,
        [
          '-e',
          `trace=${fault.syscall}`,
          '-e',
          `inject=${fault.syscall}:error=EIO:when=${fault.when}`,
          '-o',
          '/dev/null',
        ],
        ['--out', out, '--once', ...fault.args],
      );
      const src = join(dir, 'precious.bin');
      await writeRandom(src, fault.size ?? 300_000);
      await writeFile(join(dir, 'unused'), '');
      const sent = await run(
        t,
        ['send', `127.0.0.1:${receiver.port}`, src, '--json', '--retry-delay', '0.05'],
        {
          env: { ACKSHIP_STATE_DIR: join(dir, 's') },
        },
      );
      assert.equal(sent.code, 0, sent.stderr);
      assert.match(sent.stderr, fault.reason);
      const [item] = itemRecords(sent.stdout);
      assert.equal(item?.attempts, 2, `the first attempt was refused, not confirmed: ${sent.stderr}`);
      assert.equal((await receiver.exited).code, 0);
      assert.equal(receiver.stdout().match(/^confirmed /gm)?.length, 1, 'the receiver confirmed once');
      assert.equal(await sha256File(join(out, 'precious.bin')), await sha256File(src));
    });
  }

  test('a failed write of a file sent with its OFFER (v6) refuses that file alone: the session goes on', async (t) => {
    await loadHasher();
    const dir = await tempDir(t);
    const out = join(dir, 'out');
    // A payload that came in one socket read is one buffer: one pwrite64, the first.
    const receiver = await tracedReceiver(
      t,
      ['-e', 'trace=pwrite64', '-e', 'inject=pwrite64:error=EIO:when=1', '-o', '/dev/null'],
      ['--out', out],
    );
    const peer = await rawSender(t, receiver.port);
    const payload = Buffer.from('sent with its offer');
    const eager = (): Frame[] => [
      { ...(offerFrame(0, 'e.txt', payload.length) as OfferFrame), eager: true },
      { kind: Kind.Data, slot: 0, offset: 0, payload },
      { kind: Kind.End, slot: 0, hash: xxh64(payload) },
    ];
    peer.send(...eager());
    const [refused] = await peer.frames(1);
    assert.ok(refused?.kind === Kind.Reject && refused.code === RejectCode.ReceiverIo, show(refused));
    assert.match(refused.reason, /receiver could not write the item: EIO/);
    peer.send(...eager());
    const [, confirmed] = await peer.frames(2);
    assert.ok(confirmed?.kind === Kind.Confirm && confirmed.size === payload.length, show(confirmed));
    assert.equal(await readFile(join(out, 'e.txt'), 'utf8'), 'sent with its offer');
  });
});

describe('system calls of a real sender', { skip }, () => {
  test('the connection opens while the tree is still being read, not after', async (t) => {
    const dir = await tempDir(t);
    const tree = join(dir, 'tree');
    for (let d = 0; d < 100; d++) {
      await mkdir(join(tree, `d${d}`), { recursive: true });
      await writeFile(join(tree, `d${d}`, 'f'), `${d}`);
    }
    const receiver = await startReceiver(t, ['--out', join(dir, 'out')]);
    const traceFile = join(dir, 'trace.txt');
    const sent = await run(t, ['send', `127.0.0.1:${receiver.port}`, `${tree}/`, '-r'], {
      wrap: ['strace', '-f', '-y', '-e', 'trace=connect,getdents64', '-o', traceFile],
      env: { ACKSHIP_STATE_DIR: join(dir, 'state') },
    });
    assert.equal(sent.code, 0, sent.stderr);
    const calls = parseTrace(await readFile(traceFile, 'utf8'));
    const connect = find(
      calls,
      'the connect',
      (c) => c.name === 'connect' && c.args.includes(`htons(${receiver.port})`),
    );
    const reads = calls.filter((c) => c.name === 'getdents64' && c.args.includes(tree));
    assert.ok(reads.length >= 100, `the trace shows the tree read (${reads.length} calls)`);
    assert.ok(
      connect.started < (reads.at(-1) as Call).started,
      'connect() started before the last directory of the tree was read',
    );
  });
});
