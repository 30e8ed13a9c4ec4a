// The library API in-process: send Buffers, files and streams to a receiver in this process
// (and to one in a child process); typed errors; abort leaves a partial that the next call resumes.
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import {
  AbortedError,
  AckshipError,
  type AckshipReceiver,
  ExitCode,
  RejectedError,
  send,
  serve,
} from '../src/index.js';
import { startReceiver, tempDir } from './support/cli.js';
import { sha256, sha256File, writeRandom } from './support/files.js';
import { deadPort, httpLikeServer } from './support/net.js';
import { FaultProxy } from './support/proxy.js';

async function receiverIn(t: import('node:test').TestContext, out: string): Promise<AckshipReceiver> {
  const receiver = await serve({ out, listen: '127.0.0.1:0' });
  t.after(() => receiver.close());
  return receiver;
}

test('send resolves with every item confirmed: a Buffer, a file and a stream', async (t) => {
  const dir = await tempDir(t);
  const receiver = await receiverIn(t, join(dir, 'out'));
  const confirmed: string[] = [];
  receiver.on('confirmed', (item) => confirmed.push(item.name));
  await writeFile(join(dir, 'file.txt'), 'from a file');
  const bytes = Buffer.from('from a buffer');
  const result = await send(
    `127.0.0.1:${receiver.address.port}`,
    [
      { name: 'buffer.bin', data: bytes },
      join(dir, 'file.txt'),
      { name: 'nested/stream.txt', data: Readable.from(['from ', 'a ', 'stream']) },
    ],
    { stateDir: join(dir, 'state') },
  );
  assert.deepEqual(result.items.map((i) => i.name).sort(), ['buffer.bin', 'file.txt', 'nested/stream.txt']);
  assert.equal(result.summary.connections, 1);
  assert.deepEqual(confirmed.sort(), ['buffer.bin', 'file.txt', 'nested/stream.txt']);
  assert.equal(sha256(await readFile(join(dir, 'out', 'buffer.bin'))), sha256(bytes));
  assert.equal(await readFile(join(dir, 'out', 'nested', 'stream.txt'), 'utf8'), 'from a stream');
});

test('a rejection is a typed error with the CLI exit code', async (t) => {
  const dir = await tempDir(t);
  const receiver = await receiverIn(t, dir);
  await writeFile(join(dir, 'taken'), 'first');
  await assert.rejects(
    send(`127.0.0.1:${receiver.address.port}`, [{ name: 'taken', data: Buffer.from('second') }], {
      stateDir: join(dir, 'state'),
    }),
    (err: unknown) =>
      err instanceof RejectedError && err.code === 'ACK_ERR_REJECTED' && err.exitCode === ExitCode.Rejected,
  );
  assert.equal(await readFile(join(dir, 'taken'), 'utf8'), 'first');
});

test('an abort leaves nothing visible, and the next call resumes (receiver in a child process)', async (t) => {
  const dir = await tempDir(t);
  const size = 16 * 1024 * 1024;
  await writeRandom(join(dir, 'big'), size);
  const out = join(dir, 'out');
  const receiver = await startReceiver(t, ['--out', out]);
  const proxy = await FaultProxy.start(t, { target: receiver.port, rate: 8 * 1024 * 1024 });
  const controller = new AbortController();
  const options = { stateDir: join(dir, 'state'), retryDelay: 0.05 };
  const first = send(`127.0.0.1:${proxy.port}`, [join(dir, 'big')], {
    ...options,
    signal: controller.signal,
  });
  await proxy.waitForwarded(size / 3);
  controller.abort();
  await assert.rejects(
    first,
    (err: unknown) => err instanceof AbortedError && err.exitCode === ExitCode.Interrupted,
  );
  assert.deepEqual(
    (await readdir(out)).filter((n) => n !== '.ackship'),
    [],
    'nothing under the final name',
  );
  const second = await send(`127.0.0.1:${receiver.port}`, [join(dir, 'big')], options);
  assert.ok((second.items[0]?.resumedFrom ?? 0) > 0, 'resumed from the partial');
  assert.equal(await sha256File(join(out, 'big')), await sha256File(join(dir, 'big')));
});

test('each failure class is its own typed error, with the CLI exit code', async (t) => {
  const dir = await tempDir(t);
  const options = { stateDir: join(dir, 'state'), retries: 0, timeout: 2 };
  const item = [{ name: 'x', data: Buffer.from('x') }];
  const httpPort = await httpLikeServer(t);
  const unused = await deadPort();
  const cases: Array<[string, () => Promise<unknown>, string, number]> = [
    ['bad target', () => send('host:99999', item, options), 'ACK_ERR_USAGE', ExitCode.Usage],
    [
      'missing file',
      () => send('127.0.0.1:1', [join(dir, 'missing')], options),
      'ACK_ERR_INPUT',
      ExitCode.NoInput,
    ],
    [
      'nothing listens',
      () => send(`127.0.0.1:${unused}`, item, options),
      'ACK_ERR_UNCONFIRMED',
      ExitCode.Unconfirmed,
    ],
    [
      'not ackship',
      () => send(`127.0.0.1:${httpPort}`, item, options),
      'ACK_ERR_HANDSHAKE',
      ExitCode.Protocol,
    ],
  ];
  for (const [why, attempt, code, exitCode] of cases) {
    await assert.rejects(attempt(), (err: unknown) => {
      assert.ok(err instanceof AckshipError, why);
      assert.equal(err.code, code, why);
      assert.equal(err.exitCode, exitCode, why);
      return true;
    });
  }
});

test('a receiver closes when its signal aborts', async (t) => {
  const dir = await tempDir(t);
  const controller = new AbortController();
  const receiver = await serve({ out: dir, listen: '127.0.0.1:0', signal: controller.signal });
  t.after(() => receiver.close());
  controller.abort();
  await receiver.close();
  await assert.rejects(
    send(`127.0.0.1:${receiver.address.port}`, [{ name: 'late', data: Buffer.from('x') }], {
      stateDir: join(dir, 'state'),
      retries: 0,
    }),
    (err: unknown) => err instanceof AckshipError && err.code === 'ACK_ERR_UNCONFIRMED',
  );
});
