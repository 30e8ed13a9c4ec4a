// Who may send (PROTOCOL.md §2.1), with real processes: a shared secret proved both ways, every
// way of getting it wrong failing both sides with exit 77 before any payload is written, and a
// damaged confirmation never counted.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { chmod, readdir, readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import { encodeFrame, encodeHello } from '../src/protocol/codec.js';
import { ErrorCode, Kind, MAX_VERSION, Role } from '../src/protocol/constants.js';
import { itemRecords, records, run, startReceiver, tempDir } from './support/cli.js';
import { FaultProxy } from './support/proxy.js';

async function secretFile(dir: string, name: string, secret: string, mode = 0o600): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, `${secret}\n`);
  await chmod(path, mode);
  return path;
}

/** `send` of one small file to `port`, with `args` (a secret, say); its result and the file's path. */
async function sendFile(
  t: TestContext,
  dir: string,
  port: number,
  args: string[],
  env: NodeJS.ProcessEnv = {},
) {
  const path = join(dir, 'note.txt');
  await writeFile(path, 'for your eyes only');
  return run(t, ['send', `127.0.0.1:${port}`, path, '--json', '--retry-delay', '0.05', ...args], {
    env: { ACKSHIP_STATE_DIR: join(dir, 'state'), ...env },
  });
}

/** What the receiver's DIR holds: nothing but its own state, and no partial, when nothing got through. */
async function nothingStored(out: string): Promise<void> {
  assert.deepEqual(await readdir(out), ['.ackship']);
  assert.deepEqual(await readdir(join(out, '.ackship', 'parts')), []);
}

describe('shared secret', () => {
  test('both sides with the same secret (a file, and the environment): delivered', async (t) => {
    const dir = await tempDir(t);
    const out = join(dir, 'out');
    const file = await secretFile(dir, 'secret', 'correct horse');
    const receiver = await startReceiver(t, ['--out', out, '--secret-file', file]);
    const sent = await sendFile(t, dir, receiver.port, [], { ACKSHIP_SECRET: 'correct horse' });
    assert.equal(sent.code, 0, sent.stderr);
    assert.equal(await readFile(join(out, 'note.txt'), 'utf8'), 'for your eyes only');
  });

  const mismatches = [
    {
      what: 'a wrong secret',
      recv: ['correct horse'],
      send: { ACKSHIP_SECRET: 'battery staple' },
      sender: /does not know our shared secret \(wrong secret\)|receiver ended the session: .*wrong secret/,
      receiver: /wrong secret/,
    },
    {
      what: 'a secret on the receiver only',
      recv: ['correct horse'],
      send: {},
      sender: /the receiver requires a shared secret, and we have none/,
      receiver: /the sender has no shared secret, and we require one/,
    },
    {
      what: 'a secret on the sender only',
      recv: [],
      send: { ACKSHIP_SECRET: 'correct horse' },
      sender: /the receiver has no shared secret, and we require one/,
      receiver: /the sender requires a shared secret, and we have none/,
    },
  ];
  for (const m of mismatches) {
    test(`${m.what}: both sides say why, send exits 77, nothing is stored`, async (t) => {
      const dir = await tempDir(t);
      const out = join(dir, 'out');
      const recvArgs =
        m.recv.length > 0 ? ['--secret-file', await secretFile(dir, 'secret', m.recv[0] as string)] : [];
      const receiver = await startReceiver(t, ['--out', out, ...recvArgs]);
      const sent = await sendFile(t, dir, receiver.port, [], m.send);
      assert.equal(sent.code, 77, sent.stderr);
      assert.match(sent.stderr, m.sender);
      assert.equal(records(sent.stdout).find((r) => r.event === 'item')?.status, 'failed');
      await receiver.waitFor(m.receiver);
      await nothingStored(out);
    });
  }

  test('a secret file that others may read is refused, on both commands', async (t) => {
    const dir = await tempDir(t);
    const file = await secretFile(dir, 'secret', 'correct horse', 0o644);
    const recv = await run(t, [
      'recv',
      '--listen',
      '127.0.0.1:0',
      '--out',
      join(dir, 'out'),
      '--secret-file',
      file,
    ]);
    assert.equal(recv.code, 64);
    assert.match(recv.stderr, /refusing the secret file .*others may read it \(mode 644\); run chmod 600/);
    const sent = await sendFile(t, dir, 9, ['--secret-file', file]);
    assert.equal(sent.code, 64);
  });

  test('recv refuses to listen beyond loopback without a secret', async (t) => {
    const dir = await tempDir(t);
    const recv = await run(t, ['recv', '--listen', '0.0.0.0:0', '--out', join(dir, 'out')]);
    assert.equal(recv.code, 64);
    assert.match(recv.stderr, /refusing to listen on 0\.0\.0\.0:0 without a shared secret/);
  });

  test('a peer that skips the proof is cut off before any item is opened', async (t) => {
    const dir = await tempDir(t);
    const out = join(dir, 'out');
    const receiver = await startReceiver(t, ['--out', out, '--secret-file', await secretFile(dir, 's', 'x')]);
    const socket = connect({ host: '127.0.0.1', port: receiver.port });
    t.after(() => socket.destroy());
    const offer = encodeFrame({
      kind: Kind.Offer,
      slot: 0,
      id: Buffer.alloc(16, 7),
      size: 3,
      name: Buffer.from('sneaky'),
    });
    socket.write(
      Buffer.concat([
        encodeHello({ minVersion: 1, maxVersion: MAX_VERSION, role: Role.Sender, secret: true }),
        ...offer,
      ]),
    );
    const reply: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => reply.push(chunk));
    await once(socket, 'close');
    const bytes = Buffer.concat(reply);
    // Its hello, its CHALLENGE (5 + 32 bytes), then ERROR 9.
    const error = bytes.subarray(8 + 37);
    assert.equal(error.readUInt8(0), Kind.Error);
    assert.equal(error.readUInt16BE(5), ErrorCode.Auth);
    assert.match(error.subarray(7).toString(), /sent frame kind 1 before proving the shared secret/);
    await nothingStored(out);
  });

  test('a damaged confirmation is not counted: the sender asks again and gets a genuine one', async (t) => {
    const dir = await tempDir(t);
    const out = join(dir, 'out');
    const receiver = await startReceiver(t, ['--out', out, '--secret-file', await secretFile(dir, 's', 'x')]);
    // Receiver to sender: hello 8, CHALLENGE 37, PROOF 37, ACCEPT 25, CONFIRM 73: its last byte is the tag's.
    const proxy = await FaultProxy.start(t, {
      target: receiver.port,
      reply: { corruptAt: 8 + 37 + 37 + 25 + 73 - 1 },
    });
    const sent = await sendFile(t, dir, proxy.port, [], { ACKSHIP_SECRET: 'x' });
    assert.equal(sent.code, 0, sent.stderr);
    assert.match(sent.stderr, /a confirmation failed authentication \(forged or damaged\): not counted/);
    const [item] = itemRecords(sent.stdout);
    assert.equal(item?.attempts, 2);
    assert.equal(await readFile(join(out, 'note.txt'), 'utf8'), 'for your eyes only');
  });
});
