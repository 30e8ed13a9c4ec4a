// The receiver's limits, each against a real receiver process: peers that trickle bytes are
// cut off, a connection too many is told to retry, a connection offering too many items is
// moved on, and a name over the limit is refused; meanwhile other senders are served.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import { loadHasher, xxh64 } from '../src/hash.js';
import { encodeHello } from '../src/protocol/codec.js';
import { ErrorCode, Kind, MAX_VERSION, Role } from '../src/protocol/constants.js';
import { records, run, startReceiver, tempDir } from './support/cli.js';
import { offerFrame, type RawSender, rawSender, show, transferId } from './support/raw-sender.js';

await loadHasher();

const senderHello = encodeHello({ minVersion: 1, maxVersion: MAX_VERSION, role: Role.Sender });

/** A raw connection to the receiver; resolves what it sent once it closed the connection. */
async function rawPeer(t: TestContext, port: number, first?: Buffer) {
  const socket: Socket = connect({ host: '127.0.0.1', port });
  t.after(() => socket.destroy());
  socket.on('error', () => {});
  await once(socket, 'connect');
  if (first !== undefined) socket.write(first);
  const reply: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => reply.push(chunk));
  const closed = once(socket, 'close').then(() => Buffer.concat(reply));
  return { socket, closed };
}

/** The ERROR frame after the receiver's 8-byte hello: its code and message. */
function errorAfterHello(reply: Buffer): { code: number; message: string } {
  const frame = reply.subarray(8);
  assert.equal(frame.readUInt8(0), Kind.Error, `an ERROR frame follows the hello: ${reply.toString('hex')}`);
  return { code: frame.readUInt16BE(5), message: frame.subarray(7).toString() };
}

async function sendOne(t: TestContext, port: number, dir: string, name: string, extra: string[] = []) {
  const path = join(dir, name);
  await writeFile(path, name);
  return run(t, ['send', `127.0.0.1:${port}`, path, '--json', '--retry-delay', '0.1', ...extra], {
    env: { ACKSHIP_STATE_DIR: join(dir, 'state') },
  });
}

describe('receiver limits', () => {
  test('a peer that trickles its hello or a frame header is cut off; others are served meanwhile', async (t) => {
    const dir = await tempDir(t);
    const receiver = await startReceiver(t, ['--out', join(dir, 'out'), '--header-timeout', '1']);
    const silent = await rawPeer(t, receiver.port);
    const trickling = await rawPeer(
      t,
      receiver.port,
      Buffer.concat([senderHello, Buffer.from([Kind.Offer, 0])]),
    );
    const sent = await sendOne(t, receiver.port, dir, 'meanwhile.txt');
    assert.equal(sent.code, 0, sent.stderr);
    for (const peer of [silent, trickling]) {
      const cut = errorAfterHello(await peer.closed);
      assert.equal(cut.code, ErrorCode.Timeout);
      assert.match(cut.message, /a hello or frame header took over 1 s to arrive/);
    }
  });

  test('at the connection cap the idlest connection makes room; busy ones are kept, and with none idle the newcomer is told to retry', async (t) => {
    const dir = await tempDir(t);
    const receiver = await startReceiver(t, ['--out', join(dir, 'out'), '--max-connections', '2']);
    // Two peers, each with an item accepted and in flight: neither may be reclaimed.
    const busy = [await rawSender(t, receiver.port), await rawSender(t, receiver.port)];
    for (const [i, peer] of busy.entries()) {
      peer.send(offerFrame(0, `in-flight-${i}`, 10, transferId(i + 1)));
      await peer.frames(1);
    }
    const third = await rawPeer(t, receiver.port, senderHello);
    const turnedAway = errorAfterHello(await third.closed);
    assert.equal(turnedAway.code, ErrorCode.Busy);
    assert.match(turnedAway.message, /serves 2 connections at once/);
    // The first finishes its item: now idle, it is the one to make room.
    const payload = Buffer.alloc(10, 1);
    (busy[0] as RawSender).send(
      { kind: Kind.Data, slot: 0, offset: 0, payload },
      { kind: Kind.End, slot: 0, hash: xxh64(payload) },
    );
    await (busy[0] as RawSender).frames(2);
    const sent = await sendOne(t, receiver.port, dir, 'patient.txt');
    assert.equal(sent.code, 0, sent.stderr);
    const [, , reclaimed] = await (busy[0] as RawSender).frames(3);
    assert.ok(reclaimed?.kind === Kind.Error && reclaimed.code === ErrorCode.Busy, show(reclaimed));
    assert.match(reclaimed.message, /needed this idle connection/);
    assert.equal((busy[1] as RawSender).received.length, 1, 'the connection with an item in flight was kept');
  });

  test('a connection offering more than --max-items is moved on to a new one, and every item arrives', async (t) => {
    const dir = await tempDir(t);
    const src = join(dir, 'src');
    const out = join(dir, 'out');
    await mkdir(src);
    for (let i = 0; i < 10; i++) await writeFile(join(src, `f${i}`), `item ${i}`);
    const receiver = await startReceiver(t, ['--out', out, '--max-items', '3']);
    const sent = await run(
      t,
      ['send', `127.0.0.1:${receiver.port}`, '-r', `${src}/`, '--json', '--retry-delay', '0.05'],
      {
        env: { ACKSHIP_STATE_DIR: join(dir, 'state') },
      },
    );
    assert.equal(sent.code, 0, sent.stderr);
    const summary = records(sent.stdout).find((r) => r.event === 'summary');
    assert.equal(summary?.confirmed, 10);
    assert.ok((summary?.connections as number) >= 4, `connections ${summary?.connections}`);
    assert.equal((await readdir(out)).filter((n) => n.startsWith('f')).length, 10);
  });

  test('a name longer than --max-name is rejected with a reason, and nothing is stored', async (t) => {
    const dir = await tempDir(t);
    const out = join(dir, 'out');
    const receiver = await startReceiver(t, ['--out', out, '--max-name', '8']);
    const sent = await sendOne(t, receiver.port, dir, 'much-too-long.txt');
    assert.equal(sent.code, 65, sent.stderr);
    assert.match(sent.stderr, /name is 17 bytes, the receiver's limit is 8/);
    assert.deepEqual(await readdir(out), ['.ackship']);
  });
});
