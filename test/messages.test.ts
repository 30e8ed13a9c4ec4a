// Programs to programs (PROTOCOL.md §4.12, §6.2, §7.4): a client multiplexing messages over a
// long-lived connection, confirmed only once the receiving application's handler resolved;
// refusals, failures and retries; dedup by the caller's id across restarts of both ends; faults
// on the wire; and `recv --exec`. Real sockets, real processes.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  AbortedError,
  type AckshipClient,
  type AckshipReceiver,
  connect,
  type Handler,
  type HandlerItem,
  Refusal,
  RejectedError,
  serve,
  UnconfirmedError,
  UsageError,
} from '../src/index.js';
import { records, run, startReceiver, tempDir } from './support/cli.js';
import { sha256 } from './support/files.js';
import { gate } from './support/gate.js';
import { FaultProxy } from './support/proxy.js';

async function handlerReceiver(t: TestContext, handler: Handler, extra = {}): Promise<AckshipReceiver> {
  const receiver = await serve({ listen: '127.0.0.1:0', handler, ...extra });
  t.after(() => receiver.close());
  return receiver;
}

async function clientOf(t: TestContext, port: number, options = {}): Promise<AckshipClient> {
  const client = await connect(`127.0.0.1:${port}`, { retryDelay: 0.05, ...options });
  t.after(() => client.close());
  return client;
}

const HANDLER_RECEIVER = fileURLToPath(new URL('./support/handler-receiver.js', import.meta.url));

interface ChildReceiver {
  child: ChildProcess;
  port: number;
  /** Connections the receiver itself accepted. */
  connections(): number;
}

async function childReceiver(t: TestContext, stateDir: string, callsLog: string): Promise<ChildReceiver> {
  const child = spawn(process.execPath, [HANDLER_RECEIVER, stateDir, callsLog], { stdio: 'pipe' });
  t.after(() => child.kill('SIGKILL'));
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  let stderr = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      const match = /listening on 127\.0\.0\.1:(\d+)/.exec(stderr);
      if (match) resolve(Number(match[1]));
    });
    child.on('exit', (code) => reject(new Error(`receiver exited (${code}): ${stderr}`)));
  });
  return { child, port, connections: () => stdout.split('\n').filter((l) => l === 'connection').length };
}

async function calls(log: string): Promise<Array<{ id: string; size: number; redelivered: boolean }>> {
  const text = await readFile(log, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l));
}

test('3,000 messages over one client take one connection, each handled once, in a receiver process', async (t) => {
  const dir = await tempDir(t);
  const log = join(dir, 'calls.jsonl');
  const receiver = await childReceiver(t, join(dir, 'state'), log);
  const client = await clientOf(t, receiver.port);
  const acks = await Promise.all(
    Array.from({ length: 3000 }, (_, i) =>
      client.send({ id: `m${i}`, data: Buffer.from(`payload ${i}`), meta: { n: String(i) } }),
    ),
  );
  assert.equal(acks.length, 3000);
  for (const [i, ack] of acks.entries()) {
    assert.equal(ack.id, `m${i}`);
    assert.equal(ack.duplicate, false);
    assert.equal(ack.reply?.toString(), `ok m${i}`);
  }
  const handled = await calls(log);
  assert.equal(handled.length, 3000);
  assert.equal(new Set(handled.map((c) => c.id)).size, 3000, 'no message handled twice');
  assert.equal(client.stats.connectionsOpened, 1);
  assert.equal(receiver.connections(), 1, "the receiver's own count of connections");
  assert.deepEqual(
    { inFlight: client.stats.inFlight, queued: client.stats.queued, bytes: client.stats.bytesInFlight },
    { inFlight: 0, queued: 0, bytes: 0 },
  );
});

test('the ack waits for the handler: nothing is confirmed while it has not resolved', async (t) => {
  const release = gate();
  const gotBytes = gate<Buffer>();
  const receiver = await handlerReceiver(t, async (item) => {
    if (item.id !== 'held') return 'quick';
    gotBytes.open(await item.bytes());
    await release.opened;
    return 'released';
  });
  const client = await clientOf(t, receiver.address.port);
  let acked = false;
  const held = client.send({ id: 'held', data: Buffer.from('hold me') }).then((ack) => {
    acked = true;
    return ack;
  });
  assert.equal((await gotBytes.opened).toString(), 'hold me');
  // A message behind it on the same connection is answered: any early answer to the first came before.
  assert.equal((await client.send({ id: 'after', data: Buffer.from('x') })).reply?.toString(), 'quick');
  assert.equal(acked, false, 'no ack while the handler has not resolved');
  assert.equal(client.stats.inFlight, 1);
  release.open();
  assert.equal((await held).reply?.toString(), 'released');
});

test("a handler slower than the client's timeout: the receiver says it is working, and nothing is sent twice", async (t) => {
  let calls = 0;
  const receiver = await handlerReceiver(t, async (item) => {
    calls++;
    await item.bytes();
    // Slow on purpose: what is under test is a handler that outlasts the sender's silence rule.
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    return 'done';
  });
  let connections = 0;
  receiver.on('connection', () => connections++);
  const client = await clientOf(t, receiver.address.port, { timeout: 1.5 });
  const [slow, quick] = await Promise.all([
    client.send({ id: 'slow', data: Buffer.from('payload') }),
    client.send({ id: 'quick', data: Buffer.from('other') }),
  ]);
  assert.equal(slow.reply?.toString(), 'done');
  assert.deepEqual([slow.attempts, slow.duplicate, quick.attempts, quick.duplicate], [1, false, 1, false]);
  assert.equal(calls, 2, 'each message handled once');
  assert.equal(connections, 1, 'the connection was never given up');
  assert.equal(client.stats.connectionsOpened, 1);
});

test('a handler that throws is retried, told it is a redelivery; a Refusal rejects with its reason', async (t) => {
  const seen: Array<Pick<HandlerItem, 'id' | 'redelivered'>> = [];
  const receiver = await handlerReceiver(t, async (item) => {
    seen.push({ id: item.id, redelivered: item.redelivered });
    await item.bytes();
    if (item.id === 'flaky' && !item.redelivered) throw new Error('database is restarting');
    if (item.id === 'bad') throw new Refusal('unknown tenant acme');
    return undefined;
  });
  const client = await clientOf(t, receiver.address.port);
  const flaky = await client.send({ id: 'flaky', data: Buffer.from('1') });
  assert.equal(flaky.attempts, 2);
  assert.equal(flaky.reply, undefined);
  await assert.rejects(
    client.send({ id: 'bad', data: Buffer.from('2') }),
    (err: unknown) => err instanceof RejectedError && /unknown tenant acme/.test(err.message),
  );
  assert.deepEqual(seen, [
    { id: 'flaky', redelivered: false },
    { id: 'flaky', redelivered: true },
    { id: 'bad', redelivered: false },
  ]);
});

test('the same id after both ends restarted is answered duplicate, with its reply, without a second call', async (t) => {
  const dir = await tempDir(t);
  const [state, log] = [join(dir, 'state'), join(dir, 'calls.jsonl')];
  const first = await childReceiver(t, state, log);
  const before = await connect(`127.0.0.1:${first.port}`);
  const ack = await before.send({ id: 'task-42', data: Buffer.from('do it once') });
  assert.deepEqual([ack.duplicate, ack.reply?.toString()], [false, 'ok task-42']);
  await before.close();
  first.child.kill('SIGKILL');
  await once(first.child, 'exit');
  const second = await childReceiver(t, state, log);
  const after = await clientOf(t, second.port);
  const again = await after.send({ id: 'task-42', data: Buffer.from('do it once') });
  assert.deepEqual([again.duplicate, again.reply?.toString(), again.hash], [true, 'ok task-42', ack.hash]);
  assert.equal((await calls(log)).length, 1, 'the handler ran once');
  await assert.rejects(
    after.send({ id: 'task-42', data: Buffer.from('other bytes') }),
    (err: unknown) => err instanceof RejectedError && /taken earlier for other content/.test(err.message),
  );
});

test('a connection reset in the middle of a 4 MiB message is retried on the pool; the caller sees one ack', async (t) => {
  const got: string[] = [];
  const receiver = await handlerReceiver(t, async (item) => {
    got.push(sha256(await item.bytes()));
  });
  const proxy = await FaultProxy.start(t, {
    target: receiver.address.port,
    faultsFor: (n) => (n === 0 ? { request: { cutAfter: 2 * 1024 * 1024 } } : {}),
  });
  const client = await clientOf(t, proxy.port);
  const data = Buffer.alloc(4 * 1024 * 1024, 0xab);
  const ack = await client.send({ id: 'chunk-1', data });
  assert.equal(ack.attempts, 2);
  assert.equal(client.stats.connectionsOpened, 2);
  assert.deepEqual(got, [sha256(data)], 'handled once, with every byte');
});

test('abort: one call alone, or the whole client', async (t) => {
  const entered = gate();
  const unstick = gate();
  const receiver = await handlerReceiver(t, async (item) => {
    await item.bytes();
    if (item.id.startsWith('stuck')) {
      entered.open();
      await unstick.opened;
    }
  });
  const controller = new AbortController();
  const client = await connect(`127.0.0.1:${receiver.address.port}`, { signal: controller.signal });
  const call = new AbortController();
  const stuck = client.send({ id: 'stuck-1', data: Buffer.from('a') }, { signal: call.signal });
  await entered.opened;
  call.abort();
  await assert.rejects(stuck, AbortedError);
  assert.equal(
    (await client.send({ id: 'fine', data: Buffer.from('b') })).duplicate,
    false,
    'the others go on',
  );
  const pending = client.send({ id: 'stuck-2', data: Buffer.from('c') });
  controller.abort();
  await assert.rejects(pending, AbortedError);
  assert.equal(client.stats.connectionsOpen, 0);
  unstick.open();
});

test('Buffers are sent from memory: no temp file, and no state file for calls to clobber', async (t) => {
  const tmp = await tempDir(t);
  const state = await tempDir(t);
  const saved = { TMPDIR: process.env.TMPDIR, ACKSHIP_STATE_DIR: process.env.ACKSHIP_STATE_DIR };
  process.env.TMPDIR = tmp;
  process.env.ACKSHIP_STATE_DIR = state;
  t.after(() => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });
  const receiver = await handlerReceiver(t, async (item) => {
    await item.bytes();
  });
  const client = await clientOf(t, receiver.address.port);
  await Promise.all(
    Array.from({ length: 8 }, (_, i) => client.send({ id: `b${i}`, data: Buffer.alloc(1 << 20, i) })),
  );
  assert.deepEqual(await readdir(tmp), []);
  // The old send() wrote a state file per call, and concurrent calls deleted each other's; a
  // message's id is the caller's, so the client keeps none.
  assert.deepEqual(await readdir(state), []);
});

test('a Readable is read whole and sent as one message; one past maxInFlightBytes is refused, unsent', async (t) => {
  const got: string[] = [];
  const receiver = await handlerReceiver(t, async (item) => {
    got.push((await item.bytes()).toString());
  });
  const client = await clientOf(t, receiver.address.port, { maxInFlightBytes: 1000 });
  const ack = await client.send({ id: 'r1', data: Readable.from([Buffer.from('from '), 'a stream']) });
  assert.equal(ack.size, 13);
  await assert.rejects(
    client.send({ id: 'r2', data: Readable.from([Buffer.alloc(600), Buffer.alloc(600)]) }),
    (err: unknown) => err instanceof UsageError && /passed maxInFlightBytes \(1000 bytes\)/.test(err.message),
  );
  assert.deepEqual(got, ['from a stream'], 'the handler saw the first, and nothing of the second');
});

test('backpressure: past maxInFlight a send waits, it does not queue without bound', async (t) => {
  const release = gate();
  const receiver = await handlerReceiver(t, async (item) => {
    await item.bytes();
    await release.opened;
  });
  const client = await clientOf(t, receiver.address.port, { maxInFlight: 2 });
  const sends = Array.from({ length: 5 }, (_, i) => client.send({ id: `q${i}`, data: Buffer.from('x') }));
  await new Promise<void>((resolve) => {
    const poll = () => (client.stats.queued === 3 ? resolve() : setImmediate(poll));
    poll();
  });
  assert.deepEqual([client.stats.inFlight, client.stats.queued], [2, 3]);
  release.open();
  assert.equal((await Promise.all(sends)).length, 5);
});

test('a v4 session keeps to its 64 open items: 256 calls in flight, 500 messages, one connection', async (t) => {
  // Handlers hold until 64 are under way, so 64 messages stay open while 192 more calls wait:
  // a 65th open item would end the session (§6), and one connection opened means none ever was.
  const full = gate();
  let entered = 0;
  const receiver = await handlerReceiver(t, async (item) => {
    if (++entered === 64) full.open();
    await full.opened;
    await item.bytes();
  });
  const proxy = await FaultProxy.start(t, { target: receiver.address.port, capVersion: 4 });
  const client = await clientOf(t, proxy.port);
  const acks = await Promise.all(
    Array.from({ length: 500 }, (_, i) => client.send({ id: `v4-${i}`, data: Buffer.from('x') })),
  );
  assert.equal(acks.filter((a) => a.attempts === 1 && !a.duplicate).length, 500);
  assert.equal(entered, 500);
  assert.equal(client.stats.connectionsOpened, 1);
});

test('a v4 receiver of files: send keeps to its 64 open items over 300 files, one connection', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'tree'));
  for (let i = 0; i < 300; i++) await writeFile(join(dir, 'tree', `f${i}`), `file ${i}`);
  const receiver = await startReceiver(t, ['--out', join(dir, 'out')]);
  const proxy = await FaultProxy.start(t, { target: receiver.port, capVersion: 4 });
  const sent = await run(t, ['send', `127.0.0.1:${proxy.port}`, join(dir, 'tree'), '-r', '--json'], {
    env: { ACKSHIP_STATE_DIR: join(dir, 'ids') },
  });
  assert.equal(sent.code, 0, sent.stderr);
  const summary = records(sent.stdout).find((r) => r.event === 'summary');
  assert.deepEqual([summary?.confirmed, summary?.connections, summary?.retries], [300, 1, 0]);
  assert.equal((await readdir(join(dir, 'out', 'tree'))).length, 300);
});

test('a receiver older than messages (v3): the send fails at once and says so', async (t) => {
  const receiver = await handlerReceiver(t, async () => {});
  const proxy = await FaultProxy.start(t, { target: receiver.address.port, capVersion: 3 });
  const client = await clientOf(t, proxy.port);
  await assert.rejects(
    client.send({ data: Buffer.from('x') }),
    (err: unknown) =>
      err instanceof RejectedError && /protocol version 3, which takes no messages/.test(err.message),
  );
});

test('a v3 sender of files is served by a handler receiver', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'a.txt'), 'from an older sender');
  const got: string[] = [];
  const receiver = await handlerReceiver(t, async (item) => {
    got.push(`${item.name}=${(await item.bytes()).toString()}`);
  });
  const proxy = await FaultProxy.start(t, { target: receiver.address.port, capVersion: 3 });
  const sent = await run(t, ['send', `127.0.0.1:${proxy.port}`, join(dir, 'a.txt')], {
    env: { ACKSHIP_STATE_DIR: join(dir, 'ids') },
  });
  assert.equal(sent.code, 0, sent.stderr);
  assert.deepEqual(got, ['a.txt=from an older sender']);
});

test('recv --exec: confirmed when the command exits 0, refused with its last stderr line, killed when it hangs', async (t) => {
  const dir = await tempDir(t);
  const out = join(dir, 'got');
  const ok = await startReceiver(t, [
    '--out',
    join(dir, 'state'),
    '--exec',
    `cat > "${out}-$ACKSHIP_ID"; echo "tenant=$ACKSHIP_META_TENANT" >> "${out}-$ACKSHIP_ID"`,
  ]);
  const client = await clientOf(t, ok.port);
  const ack = await client.send({ id: 'job1', data: Buffer.from('rows\n'), meta: { tenant: 'acme' } });
  assert.equal(ack.duplicate, false);
  assert.equal(await readFile(`${out}-job1`, 'utf8'), 'rows\ntenant=acme\n');
  assert.equal((await client.send({ id: 'job1', data: Buffer.from('rows\n') })).duplicate, true);

  const failing = await startReceiver(t, [
    '--out',
    join(dir, 'state2'),
    '--exec',
    'cat > /dev/null; echo "ERROR: relation t does not exist" >&2; exit 1',
  ]);
  await writeFile(join(dir, 'rows.csv'), '1,2\n');
  const refused = await run(t, ['send', `127.0.0.1:${failing.port}`, join(dir, 'rows.csv')], {
    env: { ACKSHIP_STATE_DIR: join(dir, 'ids') },
  });
  assert.equal(refused.code, 65, refused.stderr);
  assert.match(refused.stderr, /ERROR: relation t does not exist/);

  const hanging = await startReceiver(t, [
    '--out',
    join(dir, 'state3'),
    '--exec',
    `echo started >> "${out}-hang"; sleep 600`,
    '--exec-timeout',
    '1',
  ]);
  const impatient = await clientOf(t, hanging.port, { retries: 1 });
  await assert.rejects(
    impatient.send({ id: 'slow', data: Buffer.from('x') }),
    (err: unknown) => err instanceof UnconfirmedError && /did not finish within 1 s/.test(err.message),
  );
  assert.equal(await readFile(`${out}-hang`, 'utf8'), 'started\nstarted\n', 'run once per attempt');
});

test("recv --exec with a command slower than the sender's --timeout: waited for, run once, sent once", async (t) => {
  const dir = await tempDir(t);
  const runs = join(dir, 'runs');
  // Slow on purpose: the subject is a command that outlasts the sender's silence rule.
  const receiver = await startReceiver(t, [
    '--out',
    join(dir, 'state'),
    '--exec',
    `cat > /dev/null; echo run >> "${runs}"; sleep 5`,
  ]);
  await writeFile(join(dir, 'rows.csv'), '1,2\n');
  const sent = await run(
    t,
    ['send', `127.0.0.1:${receiver.port}`, join(dir, 'rows.csv'), '--timeout', '2', '--json'],
    { env: { ACKSHIP_STATE_DIR: join(dir, 'ids') } },
  );
  assert.equal(sent.code, 0, sent.stderr);
  const item = records(sent.stdout).find((r) => r.event === 'item');
  assert.deepEqual([item?.status, item?.attempts], ['confirmed', 1]);
  assert.equal(await readFile(runs, 'utf8'), 'run\n');
});

test("bytes() kept past the handler's end rejects; it never resolves with bytes the receiver let go", async (t) => {
  let kept: Promise<Buffer> | undefined;
  const receiver = await handlerReceiver(t, async (item) => {
    kept = item.bytes();
    kept.catch(() => {});
  });
  const client = await clientOf(t, receiver.address.port);
  // 4 MiB: the handler settles before the rest of the payload has come.
  await client.send({ id: 'kept', data: Buffer.alloc(4 << 20, 1) });
  await assert.rejects(kept as Promise<Buffer>, /settled before/);
});
