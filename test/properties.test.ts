// Property tests (fast-check) on the codec, the parser and the receiver's state machine, and a
// bounded fuzz of a real receiver process with mutated byte streams: arbitrary input never
// crashes or hangs the receiver, always ends in a typed error, and never writes outside DIR.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { AckshipError } from '../src/errors.js';
import { loadHasher, xxh64 } from '../src/hash.js';
import { encodeFrame, encodeHello, type Frame } from '../src/protocol/codec.js';
import { Kind, MAX_VERSION, Role } from '../src/protocol/constants.js';
import { FrameParser, type Incoming } from '../src/protocol/frame-parser.js';
import { checkName } from '../src/protocol/names.js';
import { type ReceiverAction, ReceiverMachine } from '../src/protocol/receiver-machine.js';
import { run, startReceiver, tempDir } from './support/cli.js';
import { joinedPayload } from './support/payload.js';

await loadHasher();

const SENDER_HELLO = encodeHello({ minVersion: 1, maxVersion: MAX_VERSION, role: Role.Sender });
const u32 = fc.integer({ min: 0, max: 2 ** 32 - 1 });
const length = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
// 'max': fast-check otherwise keeps arrays to about ten elements.
const bytes = (max: number) => fc.uint8Array({ maxLength: max, size: 'max' }).map((a) => Buffer.from(a));
const fixed = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map((a) => Buffer.from(a));

/** Names a hostile sender would try, and some fine ones, beside random bytes. */
const NAMES = [
  '../x',
  'a/../../x',
  '/etc/passwd',
  'C:\\x',
  'a\\..\\x',
  '.',
  '..',
  'a//b',
  '.ackship/confirmed.jsonl',
  'ok.txt',
  'dir/ok.bin',
  'esc\x1b[31m',
];

/** Any well-formed frame of any kind. */
const frame: fc.Arbitrary<Frame> = fc.oneof(
  fc
    .record({
      slot: u32,
      id: fixed(16),
      size: fc.oneof(fc.integer({ min: 0, max: 1000 }), length),
      name: fc.oneof(
        fc.constantFrom(...NAMES).map((n) => Buffer.from(n)),
        bytes(64).filter((b) => b.length > 0),
      ),
      mode: fc.option(u32, { nil: undefined }),
      mtimeMs: fc.option(fc.integer({ min: -(2 ** 50), max: 2 ** 50 }), { nil: undefined }),
    })
    .map((f) => {
      const offer: Frame = { kind: Kind.Offer, slot: f.slot, id: f.id, size: f.size, name: f.name };
      if (f.mode !== undefined) offer.mode = f.mode;
      if (f.mtimeMs !== undefined) offer.mtimeMs = f.mtimeMs;
      return offer;
    }),
  fc.record({ slot: u32, offset: length, prefixHash: u64 }).map((f): Frame => ({ kind: Kind.Accept, ...f })),
  fc
    .record({ slot: u32, code: fc.integer({ min: 0, max: 65535 }), reason: fc.string({ maxLength: 40 }) })
    .map((f): Frame => ({ kind: Kind.Reject, ...f })),
  fc
    .record({ slot: u32, offset: length, payload: bytes(300) })
    .map((f): Frame => ({ kind: Kind.Data, ...f })),
  fc.record({ slot: u32, hash: u64 }).map((f): Frame => ({ kind: Kind.End, ...f })),
  fc
    .record({ slot: u32, id: fixed(16), size: length, hash: u64 })
    .map((f): Frame => ({ kind: Kind.Confirm, ...f })),
  fc
    .record({ code: fc.integer({ min: 0, max: 65535 }), message: fc.string({ maxLength: 40 }) })
    .map((f): Frame => ({ kind: Kind.Error, ...f })),
  fc
    .record({ slot: u32, offset: length, hash: u64, payload: bytes(300) })
    .map((f): Frame => ({ kind: Kind.Chunk, ...f })),
  fc.record({ slot: u32, offset: length }).map((f): Frame => ({ kind: Kind.Ack, ...f })),
  fc.record({ slot: u32, size: length, hash: u64 }).map((f): Frame => ({ kind: Kind.Trailer, ...f })),
);

/** Feeds `stream` in pieces cut at `cuts`; returns the messages, or the error that ended them. */
function parse(stream: Buffer, cuts: number[]): { messages: Incoming[]; error?: unknown } {
  const parser = new FrameParser();
  const messages: Incoming[] = [];
  let at = 0;
  try {
    for (const cut of [...cuts.map((c) => c % (stream.length + 1)).sort((a, b) => a - b), stream.length]) {
      messages.push(...parser.push(stream.subarray(at, Math.max(at, cut))));
      at = Math.max(at, cut);
    }
    return { messages };
  } catch (error) {
    return { messages, error };
  }
}

/** What a sender sends, on a few slots at small offsets, so that sessions get past their first frame. */
const slot = fc.integer({ min: 0, max: 2 });
const small = fc.integer({ min: 0, max: 64 });
const senderFrame: fc.Arbitrary<Frame> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc
      .record({
        slot,
        size: small,
        stream: fc.boolean(),
        name: fc.oneof(
          fc.constantFrom(...NAMES).map((n) => Buffer.from(n)),
          bytes(16),
        ),
      })
      .map(
        (f): Frame => ({ kind: Kind.Offer, id: Buffer.alloc(16, f.slot), ...f, size: f.stream ? 0 : f.size }),
      ),
  },
  {
    weight: 3,
    arbitrary: fc
      .record({ slot, offset: small, payload: bytes(32) })
      .map((f): Frame => ({ kind: Kind.Data, ...f })),
  },
  {
    weight: 2,
    arbitrary: fc
      .record({ slot, offset: small, payload: bytes(32) })
      .map((f): Frame => ({ kind: Kind.Chunk, ...f, hash: xxh64(f.payload) })),
  },
  { weight: 1, arbitrary: fc.record({ slot, hash: u64 }).map((f): Frame => ({ kind: Kind.End, ...f })) },
  {
    weight: 1,
    arbitrary: fc.record({ slot, size: small, hash: u64 }).map((f): Frame => ({ kind: Kind.Trailer, ...f })),
  },
  { weight: 1, arbitrary: frame },
);

/** A plausible session from a sender: hello, then frames, as bytes. */
const session = fc
  .array(senderFrame, { maxLength: 12 })
  .map((frames) => Buffer.concat([SENDER_HELLO, ...frames.flatMap((f) => encodeFrame(f))]));

/** `stream` with a few bytes flipped, inserted or dropped. */
const mutated = session.chain((stream) =>
  fc
    .array(
      fc.record({
        at: fc.nat(),
        op: fc.constantFrom('flip', 'insert', 'drop'),
        byte: fc.integer({ min: 0, max: 255 }),
      }),
      { minLength: 1, maxLength: 4 },
    )
    .map((edits) => {
      let out = Buffer.from(stream);
      for (const { at, op, byte } of edits) {
        const i = at % (out.length + 1);
        if (op === 'flip' && i < out.length) out[i] = (out[i] as number) ^ (byte || 1);
        else if (op === 'insert')
          out = Buffer.concat([out.subarray(0, i), Buffer.from([byte]), out.subarray(i)]);
        else out = Buffer.concat([out.subarray(0, i), out.subarray(i + 1)]);
      }
      return out;
    }),
);

const limits = { maxSize: 1 << 20, maxNameLength: 4096, maxItemsPerConnection: 100 };

/** Runs a receiver machine over messages as a driver would; checks every action on the way. */
function drive(messages: Incoming[]): ReceiverAction[] {
  const machine = new ReceiverMachine(limits);
  const seen: ReceiverAction[] = [];
  for (const message of messages) {
    const actions = machine.receive(message);
    seen.push(...actions);
    for (const action of actions) {
      // Every item the store is asked to open has a name that stays inside DIR.
      if (action.type === 'open') {
        const check = checkName(Buffer.from(action.offer.name));
        assert.ok(check.ok, `opened ${JSON.stringify(action.offer.name)}`);
        assert.ok(!action.offer.parts.some((p) => p === '..' || p === '.' || p === ''));
        seen.push(...machine.decided(action.offer.slot, { type: 'accept', offset: 0, prefixHash: 0n }));
      }
      if (action.type === 'fail') assert.ok(action.error instanceof AckshipError, 'a typed error');
    }
  }
  const failed = seen.findIndex((a) => a.type === 'fail');
  if (failed >= 0) assert.equal(failed, seen.length - 1, 'nothing happens after the session failed');
  return seen;
}

describe('properties', () => {
  test('every frame encodes and parses back to itself, however the bytes are cut', () => {
    fc.assert(
      fc.property(frame, fc.array(fc.nat(), { maxLength: 4 }), (f, cuts) => {
        const stream = Buffer.concat([SENDER_HELLO, ...encodeFrame(f)]);
        const { messages, error } = parse(stream, cuts);
        assert.equal(error, undefined);
        assert.deepEqual(joinedPayload(messages.at(-1)), f);
      }),
      { numRuns: 500 },
    );
  });

  test('arbitrary bytes: the parser ends in a typed error or waits for more, never anything else', () => {
    fc.assert(
      fc.property(bytes(2000), fc.array(fc.nat(), { maxLength: 4 }), (stream, cuts) => {
        const { error } = parse(Buffer.concat([SENDER_HELLO.subarray(0, 4), stream]), cuts);
        if (error !== undefined) assert.ok(error instanceof AckshipError, String(error));
      }),
      { numRuns: 1000 },
    );
  });

  test('sessions, intact and mutated: the receiver machine never throws, fails with typed errors, and opens only safe names', () => {
    fc.assert(
      fc.property(fc.oneof(session, mutated), fc.array(fc.nat(), { maxLength: 3 }), (stream, cuts) => {
        const { messages, error } = parse(stream, cuts);
        if (error !== undefined) assert.ok(error instanceof AckshipError, String(error));
        drive(messages);
      }),
      { numRuns: 1000 },
    );
  });

  test('a real receiver fed 40 mutated sessions stays up, writes nothing outside DIR, and serves a sender after', async (t) => {
    const dir = await tempDir(t);
    const out = join(dir, 'inside', 'out');
    await mkdir(join(dir, 'inside'));
    const receiver = await startReceiver(t, ['--out', out, '--header-timeout', '1', '--idle-timeout', '2']);
    const samples = fc.sample(mutated, { numRuns: 40, seed: 7420 });
    for (const stream of samples) {
      const socket = connect({ host: '127.0.0.1', port: receiver.port });
      socket.on('error', () => {});
      socket.on('data', () => {});
      await once(socket, 'connect');
      socket.end(stream);
      await once(socket, 'close');
    }
    assert.deepEqual(await readdir(dir), ['inside'], 'nothing beside DIR');
    assert.deepEqual(await readdir(join(dir, 'inside')), ['out']);
    await writeFile(join(dir, 'note.txt'), 'after the noise');
    const sent = await run(t, ['send', `127.0.0.1:${receiver.port}`, join(dir, 'note.txt')], {
      env: { ACKSHIP_STATE_DIR: join(dir, 'state') },
    });
    assert.equal(sent.code, 0, sent.stderr);
    assert.equal(receiver.child.exitCode, null, 'the receiver is still running');
  });
});
