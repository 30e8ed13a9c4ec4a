// The promise under real faults: a receiver that starts late, dies mid-transfer, loses a
// confirmation, or a peer that speaks something else; and names that must never escape DIR.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdir, readdir, symlink, utimes, writeFile } from 'node:fs/promises';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import { ExitCode } from '../src/errors.js';
import { encodeHello } from '../src/protocol/codec.js';
import { MAX_VERSION, Role } from '../src/protocol/constants.js';
import { ackship, itemRecords, records, run, startReceiver, tempDir } from './support/cli.js';
import { sha256File, writeRandom } from './support/files.js';
import { deadPort, silentServer } from './support/net.js';
import { FaultProxy } from './support/proxy.js';

const fastRetries = ['--retries', '30', '--retry-delay', '0.05'];

/** Every file under `dir`, recursively, as relative paths (the receiver's state included). */
async function tree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true });
  return entries.map(String).sort();
}

/**
 * A receiver, a proxy that lets 8 MiB/s through (so that "the middle" of the item is real), and
 * a sender of a `size`-byte file through it, with quick retries.
 */
async function sendThroughThrottle(t: TestContext, size: number) {
  const dir = await tempDir(t);
  const out = join(dir, 'out');
  await writeRandom(join(dir, 'big'), size);
  const first = await startReceiver(t, ['--out', out]);
  const proxy = await FaultProxy.start(t, { target: first.port, rate: 8 * 1024 * 1024 });
  const sender = ackship(t, ['send', `127.0.0.1:${proxy.port}`, join(dir, 'big'), ...fastRetries, '--json'], {
    env: { ACKSHIP_STATE_DIR: join(dir, 'state') },
  });
  return { dir, out, first, proxy, sender };
}

describe('faults', () => {
  test('partials nobody resumed within --partial-ttl are swept at start; fresh and journalled ones stay', async (t) => {
    const dir = await tempDir(t);
    const out = join(dir, 'out');
    const parts = join(out, '.ackship', 'parts');
    await mkdir(parts, { recursive: true });
    const [old, fresh, journalled] = ['a', 'b', 'c'].map((c) => c.repeat(32));
    const weekAgo = new Date(Date.now() - 8 * 86400_000);
    for (const id of [old, fresh, journalled]) await writeFile(join(parts, id as string), 'partial');
    for (const id of [old, journalled]) await utimes(join(parts, id as string), weekAgo, weekAgo);
    // A journalled id whose placement a crash cut short: its retry still needs the part (§7).
    const record = { id: journalled, size: 7, hash: '0000000000000000', name: 'later.txt' };
    await writeFile(join(out, '.ackship', 'confirmed.jsonl'), `${JSON.stringify(record)}\n`);
    await startReceiver(t, ['--out', out, '--partial-ttl', '7d']);
    assert.deepEqual((await readdir(parts)).sort(), [fresh, journalled]);
  });

  test('a receiver whose stderr reader went away keeps serving (it has something to say then)', async (t) => {
    const dir = await tempDir(t);
    const out = join(dir, 'out');
    const receiver = await startReceiver(t, ['--out', out]);
    receiver.child.stderr?.destroy();
    await writeFile(join(dir, 'twice.txt'), 'x');
    const env = { ACKSHIP_STATE_DIR: join(dir, 'state') };
    const send = () => run(t, ['send', `127.0.0.1:${receiver.port}`, join(dir, 'twice.txt')], { env });
    assert.equal((await send()).code, 0);
    // Other bytes under the name are rejected ("exists"), which the receiver reports on its
    // closed stderr.
    await writeFile(join(dir, 'twice.txt'), 'other bytes');
    assert.equal((await send()).code, 65);
    await writeFile(join(dir, 'after.txt'), 'y');
    const after = await run(t, ['send', `127.0.0.1:${receiver.port}`, join(dir, 'after.txt')], { env });
    assert.equal(after.code, 0, after.stderr);
    assert.equal(receiver.child.exitCode, null);
  });

  test('a receiver started after the sender: the sender retries and succeeds', async (t) => {
    const dir = await tempDir(t);
    await writeRandom(join(dir, 'f'), 100_000);
    const port = await deadPort();
    const sender = ackship(t, ['send', `127.0.0.1:${port}`, join(dir, 'f'), ...fastRetries, '--json'], {
      env: { ACKSHIP_STATE_DIR: join(dir, 'state') },
    });
    await sender.waitFor(/attempt 1 failed: .*ECONNREFUSED/);
    const receiver = ackship(t, [
      'recv',
      '--listen',
      `127.0.0.1:${port}`,
      '--out',
      join(dir, 'out'),
      '--once',
    ]);
    const sent = await sender.exited;
    assert.equal(sent.code, 0, sent.stderr);
    assert.ok((itemRecords(sent.stdout)[0]?.attempts as number) > 1);
    assert.equal((await receiver.exited).code, 0);
    assert.equal(await sha256File(join(dir, 'out', 'f')), await sha256File(join(dir, 'f')));
  });

  test('receiver killed with SIGKILL mid-item and restarted: the sender resumes and the file is identical', async (t) => {
    const size = 24 * 1024 * 1024;
    const { dir, out, first, proxy, sender } = await sendThroughThrottle(t, size);
    await proxy.waitForwarded(size / 3);
    first.child.kill('SIGKILL');
    await first.exited;
    assert.deepEqual(
      await readdir(out).then((names) => names.filter((n) => n !== '.ackship')),
      [],
      'nothing under the final name',
    );
    const [part] = await readdir(join(out, '.ackship', 'parts'));
    assert.ok(part !== undefined, 'the partial is kept for resume');
    const second = await startReceiver(t, ['--out', out, '--json']);
    proxy.retarget(second.port);
    const sent = await sender.exited;
    assert.equal(sent.code, 0, sent.stderr);
    const [record] = itemRecords(sent.stdout);
    assert.ok((record?.attempts as number) >= 2);
    // The last attempt continued from what the killed receiver had made durable.
    const resumedFrom = record?.resumedFrom as number;
    assert.ok(resumedFrom > 0 && resumedFrom < size, `resumed from ${resumedFrom} of ${size}`);
    assert.ok((record?.bytesSent as number) < 2 * size - resumedFrom + 1);
    assert.equal(await sha256File(join(out, 'big')), await sha256File(join(dir, 'big')));
    assert.deepEqual(await readdir(join(out, '.ackship', 'parts')), []);
    second.child.kill('SIGTERM');
    await second.exited;
  });

  test('receiver stopped with SIGTERM mid-item: it tells the sender, keeps the partial, and the sender resumes', async (t) => {
    const size = 16 * 1024 * 1024;
    const { dir, out, first, proxy, sender } = await sendThroughThrottle(t, size);
    await proxy.waitForwarded(size / 4);
    first.child.kill('SIGTERM');
    assert.equal((await first.exited).code, ExitCode.Terminated);
    await sender.waitFor(/receiver ended the session: receiver is shutting down/);
    const second = await startReceiver(t, ['--out', out, '--once']);
    proxy.retarget(second.port);
    const sent = await sender.exited;
    assert.equal(sent.code, 0, sent.stderr);
    assert.ok((itemRecords(sent.stdout)[0]?.resumedFrom as number) > 0, 'resumed from the durable partial');
    assert.equal((await second.exited).code, 0);
    assert.equal(await sha256File(join(out, 'big')), await sha256File(join(dir, 'big')));
  });

  test('a lost confirmation, across a receiver restart and a second run, yields one file', async (t) => {
    const dir = await tempDir(t);
    const out = join(dir, 'out');
    const env = { env: { ACKSHIP_STATE_DIR: join(dir, 'state') } };
    await writeRandom(join(dir, 'once.bin'), 300_000);
    const first = await startReceiver(t, ['--out', out]);
    // Forward the receiver's hello (8 bytes) and ACCEPT (25), then cut: the CONFIRM never arrives.
    const proxy = await FaultProxy.start(t, { target: first.port, reply: { cutAfter: 33 } });
    const lost = await run(
      t,
      ['send', `127.0.0.1:${proxy.port}`, join(dir, 'once.bin'), '--retries', '0'],
      env,
    );
    assert.equal(lost.code, ExitCode.Unconfirmed, lost.stderr);
    await first.waitFor(/confirmed once\.bin/, 'stdout');
    first.child.kill('SIGTERM');
    await first.exited;

    const second = await startReceiver(t, ['--out', out, '--json', '--once']);
    const retried = await run(t, ['send', `127.0.0.1:${second.port}`, join(dir, 'once.bin'), '--json'], env);
    assert.equal(retried.code, 0, retried.stderr);
    assert.equal(itemRecords(retried.stdout)[0]?.bytesSent, 0, 'no data flows for an item confirmed before');
    assert.equal((await second.exited).code, 0);
    assert.equal(records(second.stdout).find((r) => r.event === 'confirmed')?.again, true);
    assert.deepEqual(
      (await tree(out)).filter((p) => !p.startsWith('.ackship')),
      ['once.bin'],
    );
    assert.equal(await sha256File(join(out, 'once.bin')), await sha256File(join(dir, 'once.bin')));
  });

  test('a lost confirmation within one run: the retry is confirmed again, one file', async (t) => {
    const dir = await tempDir(t);
    const out = join(dir, 'out');
    await writeRandom(join(dir, 'f'), 50_000);
    const receiver = await startReceiver(t, ['--out', out, '--json']);
    const proxy = await FaultProxy.start(t, { target: receiver.port, reply: { cutAfter: 33 } });
    const sent = await run(t, ['send', `127.0.0.1:${proxy.port}`, join(dir, 'f'), ...fastRetries], {
      env: { ACKSHIP_STATE_DIR: join(dir, 'state') },
    });
    assert.equal(sent.code, 0, sent.stderr);
    const confirmations = records(receiver.stdout).filter((r) => r.event === 'confirmed');
    assert.deepEqual(
      confirmations.map((r) => r.again),
      [false, true],
    );
    assert.deepEqual(
      (await tree(out)).filter((p) => !p.startsWith('.ackship')),
      ['f'],
    );
  });
});

describe('peers that do not speak ackship', () => {
  test('a client that sends HTTP gets an answer at once; the receiver says why and keeps serving', async (t) => {
    const dir = await tempDir(t);
    const receiver = await startReceiver(t, ['--out', dir]);
    const socket = connect({ host: '127.0.0.1', port: receiver.port });
    const reply: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => reply.push(chunk));
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await once(socket, 'close');
    const bytes = Buffer.concat(reply);
    assert.equal(bytes.subarray(0, 4).toString(), 'ACKS', 'the receiver introduced itself');
    assert.match(bytes.subarray(8).toString('latin1'), /peer does not speak ackship/);
    await receiver.waitFor(
      /ackship: 127\.0\.0\.1:\d+: peer does not speak ackship \(it sent "G\?\?\?"\)|peer does not speak ackship/,
    );
    await writeFile(join(dir, 'after'), 'still serving');
    const sent = await run(t, ['send', `127.0.0.1:${receiver.port}`, join(dir, 'after'), '--name', 'ok'], {
      env: { ACKSHIP_STATE_DIR: join(dir, 'state') },
    });
    assert.equal(sent.code, 0, sent.stderr);
  });

  test('a sender of another protocol version is refused on both sides', async (t) => {
    const dir = await tempDir(t);
    const receiver = await startReceiver(t, ['--out', dir]);
    const socket = connect({ host: '127.0.0.1', port: receiver.port });
    const [min, max] = [MAX_VERSION + 1, MAX_VERSION + 2];
    socket.write(encodeHello({ minVersion: min, maxVersion: max, role: Role.Sender }));
    const reply: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => reply.push(chunk));
    await once(socket, 'close');
    assert.equal(Buffer.concat(reply).readUInt8(5), MAX_VERSION, 'the receiver told its versions');
    await receiver.waitFor(
      new RegExp(`peer speaks protocol versions ${min}-${max}, we speak 1-${MAX_VERSION}`),
    );
  });

  test('a receiver of another version: send exits 76 and says which versions', async (t) => {
    const dir = await tempDir(t);
    const server = createServer((s) => {
      s.on('error', () => {});
      s.end(encodeHello({ minVersion: 9, maxVersion: 9, role: Role.Receiver }));
    }).listen(0, '127.0.0.1');
    await once(server, 'listening');
    t.after(() => server.close());
    await writeFile(join(dir, 'f'), 'x');
    const sent = await run(
      t,
      ['send', `127.0.0.1:${(server.address() as AddressInfo).port}`, join(dir, 'f')],
      {
        env: { ACKSHIP_STATE_DIR: join(dir, 'state') },
      },
    );
    assert.equal(sent.code, ExitCode.Protocol);
    assert.match(
      sent.stderr,
      new RegExp(`^ackship: peer speaks protocol versions 9-9, we speak 1-${MAX_VERSION}$`, 'm'),
    );
  });
});

describe('silent peers', () => {
  // The connection opens while the sources are read; a run that ends before using it (here, on
  // a missing file) closes it at once, not after --connect-timeout (300 s, past this test's 30).
  test('a run that fails on its input exits at once, though its connection to a silent peer is still opening', {
    timeout: 30_000,
  }, async (t) => {
    const dir = await tempDir(t);
    const port = await silentServer(t);
    const sent = await run(
      t,
      ['send', `127.0.0.1:${port}`, join(dir, 'missing'), '--connect-timeout', '300'],
      {
        env: { ACKSHIP_STATE_DIR: join(dir, 'state') },
      },
    );
    assert.equal(sent.code, ExitCode.NoInput, sent.stderr);
    assert.match(sent.stderr, /cannot read .*missing: no such file/);
  });

  // The connect deadline ends with the hello; a shorter --timeout must take over from there, not
  // wait for --connect-timeout (the bound on this test is 30 s; the connect timeout is 300 s).
  test('a receiver silent after its hello is given up after --timeout, even one shorter than --connect-timeout', {
    timeout: 30_000,
  }, async (t) => {
    const dir = await tempDir(t);
    const sockets: Socket[] = [];
    const server = createServer((s) => {
      sockets.push(s);
      s.on('error', () => {});
      s.write(encodeHello({ minVersion: 1, maxVersion: MAX_VERSION, role: Role.Receiver }));
    }).listen(0, '127.0.0.1');
    await once(server, 'listening');
    t.after(() => {
      server.close();
      for (const socket of sockets) socket.destroy();
    });
    await writeFile(join(dir, 'f'), 'x');
    const port = (server.address() as AddressInfo).port;
    const sent = await run(
      t,
      [
        'send',
        `127.0.0.1:${port}`,
        join(dir, 'f'),
        '--timeout',
        '1',
        '--connect-timeout',
        '300',
        '--retries',
        '0',
      ],
      { env: { ACKSHIP_STATE_DIR: join(dir, 'state') } },
    );
    assert.equal(sent.code, ExitCode.Unconfirmed, sent.stderr);
    assert.match(sent.stderr, /was silent for 1 s/);
  });
});

describe('names that must not escape DIR', () => {
  const bad = [
    '../x',
    'a/../../x',
    '/etc/x',
    'C:\\x',
    'a\\..\\x',
    '.',
    'a//b',
    '.ackship/confirmed.jsonl',
    'esc\x1b[31m',
    'planted/x',
    'existing-dir',
  ];

  test('each is rejected with exit 65 and a reason, and nothing appears outside DIR', async (t) => {
    const dir = await tempDir(t);
    const out = join(dir, 'out');
    const outside = join(dir, 'outside');
    await mkdir(join(out, 'existing-dir'), { recursive: true });
    await mkdir(outside);
    await symlink(outside, join(out, 'planted'));
    await writeFile(join(dir, 'payload'), 'should never land');
    const before = await tree(dir);
    const receiver = await startReceiver(t, ['--out', out]);
    for (const name of bad) {
      const sent = await run(
        t,
        ['send', `127.0.0.1:${receiver.port}`, join(dir, 'payload'), '--name', name],
        {
          env: { ACKSHIP_STATE_DIR: join(dir, '..', `${dir.split('/').at(-1)}-state`) },
        },
      );
      assert.equal(sent.code, ExitCode.Rejected, `${JSON.stringify(name)}: ${sent.stderr}`);
      assert.match(sent.stderr, /^ackship: receiver rejected .+: .+$/m);
      assert.ok(!sent.stderr.includes('\u001b'), 'no raw escape reaches the terminal');
    }
    assert.ok(!receiver.stderr.includes('\u001b'));
    const after = (await tree(dir)).filter((p) => !p.startsWith('out/.ackship'));
    assert.deepEqual(
      after,
      before.filter((p) => !p.startsWith('out/.ackship')),
    );
    assert.deepEqual(await readdir(outside), []);
  });
});
