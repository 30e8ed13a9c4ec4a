// Every vector in PROTOCOL.md §8, checked against the codec: encoded to exactly those bytes, and
// parsed back from them fed whole, one byte at a time, and split at every offset.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { AckshipError } from '../src/errors.js';
import { EncodeError } from '../src/protocol/buffer-cursor.js';
import { encodeFrame, encodeHello, type Frame, type Hello } from '../src/protocol/codec.js';
import { Kind, Role } from '../src/protocol/constants.js';
import { FrameParser, type Incoming } from '../src/protocol/frame-parser.js';
import { joinedPayload } from './support/payload.js';

const doc = readFileSync(new URL('../../PROTOCOL.md', import.meta.url), 'utf8');

interface Vector {
  name: string;
  value: Record<string, unknown>;
  bytes: Buffer;
}

function blocks(tag: string): Array<{ name: string; lines: string[] }> {
  const pattern = new RegExp(`\`\`\`${tag} (\\S+)\\n([\\s\\S]*?)\\n\`\`\``, 'g');
  return [...doc.matchAll(pattern)].map((m) => ({
    name: m[1] as string,
    lines: (m[2] as string).split('\n'),
  }));
}

const hex = (text: string) => Buffer.from(text.replace(/\s+/g, ''), 'hex');

const vectors: Vector[] = blocks('vector').map(({ name, lines }) => ({
  name,
  value: JSON.parse(lines[0] as string),
  bytes: hex(lines[1] as string),
}));

const invalid = blocks('invalid').map(({ name, lines }) => ({
  name,
  code: lines[0] as string,
  bytes: hex(lines[1] as string),
}));

const KINDS: Record<string, Kind> = {
  offer: Kind.Offer,
  accept: Kind.Accept,
  reject: Kind.Reject,
  data: Kind.Data,
  end: Kind.End,
  confirm: Kind.Confirm,
  error: Kind.Error,
  session: Kind.Session,
  chunk: Kind.Chunk,
  ack: Kind.Ack,
  trailer: Kind.Trailer,
  challenge: Kind.Challenge,
  proof: Kind.Proof,
  message: Kind.Message,
  result: Kind.Result,
  working: Kind.Working,
};

/** The JSON of a vector as the codec's value: hex fields become Buffers and bigints. */
function toMessage(value: Record<string, unknown>): Incoming {
  if (value.hello !== undefined) {
    const h = value.hello as { minVersion: number; maxVersion: number; role: string };
    const hello: Hello = { ...h, role: h.role === 'sender' ? Role.Sender : Role.Receiver };
    return { kind: 'hello', hello };
  }
  const frame: Record<string, unknown> = { ...value, kind: KINDS[value.kind as string] };
  for (const key of ['id', 'payload', 'nonce', 'proof', 'tag', 'reply'])
    if (key in value) frame[key] = hex(value[key] as string);
  for (const key of ['hash', 'prefixHash']) if (key in value) frame[key] = BigInt(`0x${value[key]}`);
  // An OFFER's name stays raw bytes until the receiver checked them (§5); a MESSAGE's is text.
  if (value.kind === 'offer') frame.name = Buffer.from(value.name as string);
  return frame as unknown as Frame;
}

function encode(message: Incoming): Buffer {
  return message.kind === 'hello' ? encodeHello(message.hello) : Buffer.concat(encodeFrame(message));
}

/** Every way to cut `bytes` into chunks that the tests use: whole, byte by byte, and in two at each offset. */
function splits(bytes: Buffer): Buffer[][] {
  const out: Buffer[][] = [[bytes], [...bytes].map((b) => Buffer.from([b]))];
  for (let i = 1; i < bytes.length; i++) out.push([bytes.subarray(0, i), bytes.subarray(i)]);
  return out;
}

const RECEIVER_HELLO = encodeHello({ minVersion: 1, maxVersion: 1, role: Role.Receiver });

describe('PROTOCOL.md vectors', () => {
  test('the document holds vectors of every kind, and invalid streams', () => {
    const kinds = new Set(vectors.map((v) => (v.value.hello ? 'hello' : v.value.kind)));
    assert.deepEqual([...kinds].sort(), [
      'accept',
      'ack',
      'challenge',
      'chunk',
      'confirm',
      'data',
      'end',
      'error',
      'hello',
      'message',
      'offer',
      'proof',
      'reject',
      'result',
      'session',
      'trailer',
      'working',
    ]);
    assert.ok(invalid.length >= 4);
  });

  for (const vector of vectors) {
    test(`${vector.name}: encodes to the documented bytes`, () => {
      assert.equal(encode(toMessage(vector.value)).toString('hex'), vector.bytes.toString('hex'));
    });

    test(`${vector.name}: parses from the documented bytes however they are split`, () => {
      const expected = toMessage(vector.value);
      // A frame only follows a hello, so frames are parsed after one.
      const stream = expected.kind === 'hello' ? vector.bytes : Buffer.concat([RECEIVER_HELLO, vector.bytes]);
      for (const chunks of splits(stream)) {
        const parser = new FrameParser();
        const messages = chunks.flatMap((chunk) => parser.push(chunk));
        assert.deepEqual(joinedPayload(messages.at(-1)), expected);
        assert.equal(messages.length, expected.kind === 'hello' ? 1 : 2);
        assert.equal(parser.buffered, 0);
      }
    });
  }

  for (const bad of invalid) {
    test(`${bad.name}: fails with ${bad.code} however the bytes are split`, () => {
      for (const chunks of splits(bad.bytes)) {
        const parser = new FrameParser();
        const seen: Incoming[] = [];
        assert.throws(
          () => {
            for (const chunk of chunks) seen.push(...parser.push(chunk));
          },
          (err: unknown) => err instanceof AckshipError && err.code === bad.code,
        );
        assert.ok(
          seen.every((m) => m.kind === 'hello'),
          'no frame is emitted from a broken stream',
        );
        assert.throws(() => parser.push(Buffer.alloc(0)), /already failed/);
      }
    });
  }
});

test('a DATA payload that spans reads is handed on as views of them, not copied', () => {
  const payload = Buffer.alloc(200_000, 7);
  const stream = Buffer.concat([
    RECEIVER_HELLO,
    ...encodeFrame({ kind: Kind.Data, slot: 3, offset: 9, payload }),
  ]);
  // Cut as a socket would, 64 KiB a read; each read a buffer of its own.
  const reads: Buffer[] = [];
  for (let at = 0; at < stream.length; at += 65536) reads.push(Buffer.from(stream.subarray(at, at + 65536)));
  const parser = new FrameParser();
  const frame = reads.flatMap((read) => parser.push(read)).at(-1) as Frame & { payload: Buffer[] };
  assert.ok(Array.isArray(frame.payload), 'the payload is the pieces it came in');
  for (const part of frame.payload) {
    assert.ok(
      reads.some((read) => read.buffer === part.buffer),
      'each piece is a view of a read',
    );
  }
  assert.ok(Buffer.concat(frame.payload).equals(payload));
});

test('xxHash64 vectors of PROTOCOL.md §8', async () => {
  const { createHasher, hashHex, loadHasher } = await import('../src/hash.js');
  await loadHasher();
  const documented = [...doc.matchAll(/`"([^"`]*)"` → `([0-9a-f]{16})`/g)];
  assert.equal(documented.length, 3);
  for (const [, input, expected] of documented) {
    const hasher = createHasher();
    // Fed in two pieces: streaming must give the one-shot value.
    const bytes = Buffer.from(input as string);
    hasher.update(bytes.subarray(0, 2)).update(bytes.subarray(2));
    assert.equal(hashHex(hasher.digest()), expected);
  }
});

test('the shared-secret examples of PROTOCOL.md §2.1: both proofs, the key, the CONFIRM and RESULT tags', async () => {
  const { SecretProof } = await import('../src/protocol/auth.js');
  const examples = [...doc.matchAll(/```auth\n(.*)\n```/g)].map(
    ([, json]) => JSON.parse(json as string) as Record<string, string | number>,
  );
  assert.deepEqual(
    examples.map((e) => e.version),
    [3, 4],
  );
  for (const example of examples) {
    const secret = Buffer.from(example.secret as string);
    const version = example.version as number;
    const [senderNonce, receiverNonce] = [
      hex(example.senderNonce as string),
      hex(example.receiverNonce as string),
    ];
    const sender = new SecretProof(secret, Role.Sender, version, senderNonce);
    const receiver = new SecretProof(secret, Role.Receiver, version, receiverNonce);
    const senderProof = sender.answer(receiver.challenge());
    const receiverProof = receiver.answer(sender.challenge());
    assert.equal(senderProof.proof.toString('hex'), example.senderProof);
    assert.equal(receiverProof.proof.toString('hex'), example.receiverProof);
    receiver.check(senderProof);
    sender.check(receiverProof);
    const [vectorName, expected] =
      example.confirmTag !== undefined
        ? ['confirm-authenticated', example.confirmTag]
        : ['result-authenticated', example.resultTag];
    const sealedVector = vectors.find((v) => v.name === vectorName);
    const { tag, ...bare } = toMessage(sealedVector?.value ?? {}) as Frame & { tag: Buffer };
    const sealed = receiver.seal(bare as Frame & { kind: typeof Kind.Confirm | typeof Kind.Result });
    assert.equal(sealed.tag?.toString('hex'), expected);
    assert.equal(tag.toString('hex'), expected);
    sender.verify(sealed);
    assert.throws(() => sender.verify({ ...sealed, size: 12 }), /failed authentication/);
    const stranger = new SecretProof(Buffer.from('wrong'), Role.Receiver, version, receiverNonce);
    stranger.answer(sender.challenge());
    assert.throws(() => stranger.check(senderProof), /wrong secret/);
  }
});

test('the message id of PROTOCOL.md §4.12', async () => {
  const { messageId } = await import('../src/protocol/message-fields.js');
  const [, json] = /```message-id\n(.*)\n```/.exec(doc) ?? [];
  const example = JSON.parse(json as string) as { key: string; id: string };
  assert.equal(messageId(example.key).toString('hex'), example.id);
  const result = vectors.find((v) => v.name === 'result-v4');
  assert.equal(result?.value.id, example.id, 'the RESULT vector echoes that id');
});

describe('the encoder checks every field before it writes a byte', () => {
  const good: Frame = {
    kind: Kind.Offer,
    slot: 0,
    id: Buffer.alloc(16),
    size: 1,
    mtimeMs: 1,
    name: Buffer.from('x'),
  };
  for (const [what, frame] of [
    ['a 2-byte transfer id', { ...good, id: Buffer.alloc(2) }],
    ['a name over 4096 bytes', { ...good, name: Buffer.alloc(4097, 0x61) }],
    ['a slot past u32', { ...good, slot: 2 ** 32 }],
    ['a negative size', { ...good, size: -1 }],
    ['a size past 2^53', { ...good, size: 2 ** 53 }],
    ['an mtime past i64', { ...good, mtimeMs: 2 ** 64 }],
    ['a hash past u64', { kind: Kind.End, slot: 0, hash: 1n << 64n }],
    ['a reject code past u16', { kind: Kind.Reject, slot: 0, code: 70000, reason: '' }],
    ['a payload over 1 MiB', { kind: Kind.Data, slot: 0, offset: 0, payload: Buffer.alloc(1024 * 1024 + 1) }],
    [
      'a CONFIRM tag of 31 bytes',
      { kind: Kind.Confirm, slot: 0, id: Buffer.alloc(16), size: 0, hash: 0n, tag: Buffer.alloc(31) },
    ],
    ['a short session id', { kind: Kind.Session, id: Buffer.alloc(15) }],
    ['a short nonce', { kind: Kind.Challenge, nonce: Buffer.alloc(8) }],
    [
      'a message key over 256 bytes',
      { kind: Kind.Message, slot: 0, size: 0, key: 'k'.repeat(257), name: '', meta: [] },
    ],
    [
      'a reply over 64 KiB',
      {
        kind: Kind.Result,
        slot: 0,
        id: Buffer.alloc(16),
        size: 0,
        hash: 0n,
        duplicate: false,
        reply: Buffer.alloc(64 * 1024 + 1),
      },
    ],
  ] as Array<[string, Frame]>) {
    test(`refuses ${what}`, () => {
      assert.throws(() => encodeFrame(frame), EncodeError);
    });
  }

  test('a frame that fits is every byte written: no unfilled buffer bytes', () => {
    for (let i = 0; i < 20; i++) {
      const bytes = Buffer.concat(encodeFrame(good));
      assert.equal(bytes.toString('hex'), Buffer.concat(encodeFrame(good)).toString('hex'));
      assert.equal(bytes.length, 5 + 41 + 1);
    }
  });
});
