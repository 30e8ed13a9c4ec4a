// A hostile or broken sender speaking raw frames to a real receiver: names no CLI could send,
// a resume past what the receiver holds, a known transfer id with other content, frames after
// the end, a header over its cap. Each gets a typed answer, and the filesystem shows that
// nothing stored was damaged and nothing was written outside DIR.
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import { loadHasher, xxh64 } from '../src/hash.js';
import { encodeFrame } from '../src/protocol/codec.js';
import { ErrorCode, Kind, RejectCode } from '../src/protocol/constants.js';
import { startReceiver, tempDir } from './support/cli.js';
import { transferId as id, offerFrame as offer, rawSender, sendItem, show } from './support/raw-sender.js';

await loadHasher();

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
    // Our encoder refuses such a name, so the frame is patched by hand: one more name byte.
    const [head, name] = encodeFrame(offer(0, Buffer.alloc(4096, 0x61), 1)) as [Buffer, Buffer];
    head.writeUInt32BE(head.readUInt32BE(1) + 1, 1);
    long.raw(Buffer.concat([head, name, Buffer.from('a')]));
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
    const confirm = await sendItem(good, 'kept.txt', Buffer.from('stored and confirmed'));
    assert.equal(confirm?.kind, Kind.Confirm);
    // Then DATA for that slot after its end.
    good.send({ kind: Kind.Data, slot: 0, offset: 0, payload: Buffer.from('overwrite!') });
    const [, , late] = await good.frames(3);
    // §6: a well-formed frame for a slot in the wrong phase is "unexpected".
    assert.ok(late?.kind === Kind.Error && late.code === ErrorCode.Unexpected, show(late));
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
