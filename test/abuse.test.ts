// A hostile or broken sender speaking raw frames to a real receiver: names no CLI could send,
// a resume past what the receiver holds, a known transfer id with other content, frames after
// the end, a header over its cap. Each gets a typed answer, and the filesystem shows that
// nothing stored was damaged and nothing was written outside DIR.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import { loadHasher, xxh64 } from '../src/hash.js';
import { encodeFrame, encodeHello, type Frame } from '../src/protocol/codec.js';
import { ErrorCode, Kind, MAX_VERSION, RejectCode, Role } from '../src/protocol/constants.js';
import { FrameParser, type Incoming } from '../src/protocol/frame-parser.js';
import { startReceiver, tempDir } from './support/cli.js';

await loadHasher();

/** A raw sender: writes frames, collects the receiver's answers until it closes. */
async function rawSender(t: TestContext, port: number) {
  const socket: Socket = connect({ host: '127.0.0.1', port });
  t.after(() => socket.destroy());
  socket.on('error', () => {});
  await once(socket, 'connect');
  socket.write(encodeHello({ minVersion: 1, maxVersion: MAX_VERSION, role: Role.Sender }));
  const parser = new FrameParser();
  const answers: Incoming[] = [];
  const waiters: Array<() => void> = [];
  socket.on('data', (chunk: Buffer) => {
    answers.push(...parser.push(chunk));
    for (const wake of waiters.splice(0)) wake();
  });
  let isClosed = false;
  const closed = once(socket, 'close').then(() => {
    isClosed = true;
    for (const wake of waiters.splice(0)) wake();
  });
  return {
    send: (...frames: Frame[]) => socket.write(Buffer.concat(frames.flatMap((f) => encodeFrame(f)))),
    raw: (bytes: Buffer) => socket.write(bytes),
    /** Waits until `count` frames (after the hello) have arrived. */
    async frames(count: number): Promise<Frame[]> {
      while (answers.filter((a) => a.kind !== 'hello').length < count) {
        if (isClosed) throw new Error(`closed after ${show(answers)}, expected ${count} frames`);
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
      return answers.filter((a): a is Frame => a.kind !== 'hello');
    },
    closed,
    end: () => socket.end(),
  };
}

const id = (n: number) => Buffer.alloc(16, n);
/** A frame for an assertion message (JSON cannot show a bigint). */
const show = (value: unknown) =>
  JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? v.toString(16) : v));
const offer = (slot: number, name: Buffer | string, size: number, transfer = id(slot)): Frame => ({
  kind: Kind.Offer,
  slot,
  id: transfer,
  size,
  name: Buffer.from(name),
});

/** Every path under `dir`, for comparing before and after. */
async function listing(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true });
  return entries.filter((e) => !e.startsWith('out/.ackship')).sort();
}

async function setUp(t: TestContext) {
  const dir = await tempDir(t);
  const out = join(dir, 'out');
  await mkdir(join(out, 'a-directory'), { recursive: true });
  const receiver = await startReceiver(t, ['--out', out]);
  return { dir, out, receiver };
}

describe('a hostile sender speaking raw frames', () => {
  test('names no CLI could send (empty, NUL, invalid UTF-8, over 4096 bytes, an existing directory) are refused with reasons', async (t) => {
    const { dir, receiver } = await setUp(t);
    const before = await listing(dir);
    // A name over 4096 bytes makes the OFFER itself too large: refused from its header.
    const long = await rawSender(t, receiver.port);
    long.send(offer(0, Buffer.alloc(4097, 0x61), 1));
    const [tooLarge] = await long.frames(1);
    assert.ok(tooLarge?.kind === Kind.Error && tooLarge.code === ErrorCode.FrameTooLarge, show(tooLarge));
    await long.closed;
    const peer = await rawSender(t, receiver.port);
    const names = [Buffer.alloc(0), Buffer.from('a\0b'), Buffer.from([0x61, 0xff, 0xfe]), 'a-directory'];
    peer.send(...names.map((name, slot) => offer(slot, name, 1)));
    const answers = await peer.frames(names.length);
    for (const answer of answers) {
      assert.ok(answer.kind === Kind.Reject, `a REJECT, got kind ${answer.kind}`);
      assert.equal(answer.code, RejectCode.BadName);
      assert.ok(answer.reason.length > 0);
    }
    peer.end();
    await peer.closed;
    assert.deepEqual(await listing(dir), before, 'nothing was created anywhere');
  });

  test('DATA past the accepted offset, and frames after the end, are protocol errors that damage nothing stored', async (t) => {
    const { dir, out, receiver } = await setUp(t);
    // First store a file properly.
    const good = await rawSender(t, receiver.port);
    const payload = Buffer.from('stored and confirmed');
    good.send(offer(0, 'kept.txt', payload.length));
    await good.frames(1);
    good.send(
      { kind: Kind.Data, slot: 0, offset: 0, payload },
      { kind: Kind.End, slot: 0, hash: xxh64(payload) },
    );
    const [, confirm] = await good.frames(2);
    assert.equal(confirm?.kind, Kind.Confirm);
    // Then DATA for that slot after its end.
    good.send({ kind: Kind.Data, slot: 0, offset: 0, payload: Buffer.from('overwrite!') });
    const [, , late] = await good.frames(3);
    assert.ok(late?.kind === Kind.Error && late.code === ErrorCode.Malformed, show(late));
    await good.closed;
    // A resume that skips ahead of what the receiver holds.
    const skipper = await rawSender(t, receiver.port);
    skipper.send(offer(0, 'skipped.txt', 100, id(9)));
    await skipper.frames(1);
    skipper.send({ kind: Kind.Data, slot: 0, offset: 50, payload: Buffer.alloc(50) });
    const [, refused] = await skipper.frames(2);
    assert.ok(refused?.kind === Kind.Error && refused.code === ErrorCode.Malformed, show(refused));
    assert.match((refused as { message: string }).message, /offset 50 for slot 0, expected 0/);
    await skipper.closed;
    assert.equal(await readFile(join(out, 'kept.txt'), 'utf8'), 'stored and confirmed');
    assert.deepEqual(
      (await listing(dir)).filter((p) => p.startsWith('out/')),
      ['out/a-directory', 'out/kept.txt'],
    );
  });

  test('a known transfer id offered with other content: refused as another item, or confirmed without touching the file', async (t) => {
    const { out, receiver } = await setUp(t);
    const first = await rawSender(t, receiver.port);
    const payload = Buffer.from('original');
    first.send(offer(0, 'same-id.txt', payload.length, id(3)));
    await first.frames(1);
    first.send(
      { kind: Kind.Data, slot: 0, offset: 0, payload },
      { kind: Kind.End, slot: 0, hash: xxh64(payload) },
    );
    await first.frames(2);
    first.end();
    await first.closed;
    const second = await rawSender(t, receiver.port);
    // Another size under the same id: another item.
    second.send(offer(0, 'same-id.txt', 99, id(3)));
    const [reject] = await second.frames(1);
    assert.ok(reject?.kind === Kind.Reject && reject.code === RejectCode.Exists, show(reject));
    // Same size and name: the receiver cannot tell; it confirms what it stored, with that hash,
    // and a real sender compares the hash with its own content (test: faults, exactly once).
    second.send(offer(1, 'same-id.txt', payload.length, id(3)));
    const [, again] = await second.frames(2);
    assert.ok(again?.kind === Kind.Confirm && again.hash === xxh64(payload), show(again));
    second.end();
    await second.closed;
    assert.equal(await readFile(join(out, 'same-id.txt'), 'utf8'), 'original');
  });

  test('a header declaring a body over its cap is refused before a byte of body is read', async (t) => {
    const { dir, receiver } = await setUp(t);
    const before = await listing(dir);
    const peer = await rawSender(t, receiver.port);
    const header = Buffer.alloc(5);
    header.writeUInt8(Kind.Offer, 0);
    header.writeUInt32BE(2 ** 31, 1);
    peer.raw(header);
    const [error] = await peer.frames(1);
    assert.ok(error?.kind === Kind.Error && error.code === ErrorCode.FrameTooLarge, show(error));
    await peer.closed;
    assert.deepEqual(await listing(dir), before);
  });
});
