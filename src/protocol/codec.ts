// Pure encoders and decoders of hellos and frame bodies (PROTOCOL.md §2–§4).
import { ProtocolError } from '../errors.js';
import { BufferReader, BufferWriter, EncodeError } from './buffer-cursor.js';
import {
  ACCEPT_LEN,
  ACK_LEN,
  CHUNK_FIXED_LEN,
  CONFIRM_LEN,
  DATA_FIXED_LEN,
  END_LEN,
  ERROR_FIXED_LEN,
  ErrorCode,
  FRAME_HEADER_LEN,
  HELLO_LEN,
  HelloFlag,
  Kind,
  MAC_LEN,
  MAGIC,
  MAX_CHUNK_LEN,
  MAX_EAGER_SIZE,
  MAX_KEY_LEN,
  MAX_META_LEN,
  MAX_NAME_LEN,
  MAX_REPLY_LEN,
  MAX_TEXT_LEN,
  MESSAGE_FIXED_LEN,
  NONCE_LEN,
  OFFER_FIXED_LEN,
  OfferFlag,
  REJECT_FIXED_LEN,
  RESULT_FIXED_LEN,
  ResultFlag,
  type Role,
  SESSION_LEN,
  TRAILER_LEN,
  TRANSFER_ID_LEN,
  WORKING_LEN,
} from './constants.js';
import { type Payload, payloadLength, payloadParts } from './payload.js';

export interface Hello {
  minVersion: number;
  maxVersion: number;
  role: Role;
  /** §2.1: this end has a shared secret and requires the peer to prove it. */
  secret?: boolean;
}

export interface OfferFrame {
  kind: typeof Kind.Offer;
  slot: number;
  id: Buffer;
  size: number;
  /** Permission bits, where the sender knows them. */
  mode?: number;
  /** Modification time in milliseconds since the epoch, where the sender knows it. */
  mtimeMs?: number;
  /** v2: an empty directory rather than a file (§4.1). */
  directory?: boolean;
  /** v3: a stream of unknown length, sent as CHUNKs and ended by a TRAILER (§4.9). */
  stream?: boolean;
  /** v4: only ask what the receiver would answer (a dry run); nothing is opened or kept. */
  query?: boolean;
  /** v6: a small file whose DATA and END follow without waiting for an answer (§6.3). */
  eager?: boolean;
  /** Raw UTF-8 bytes: the receiver validates them (§5) before it decodes them. */
  name: Buffer;
}
export interface AcceptFrame {
  kind: typeof Kind.Accept;
  slot: number;
  offset: number;
  prefixHash: bigint;
}
export interface RejectFrame {
  kind: typeof Kind.Reject;
  slot: number;
  code: number;
  reason: string;
}
export interface DataFrame {
  kind: typeof Kind.Data;
  slot: number;
  offset: number;
  payload: Payload;
}
export interface EndFrame {
  kind: typeof Kind.End;
  slot: number;
  hash: bigint;
}
export interface ConfirmFrame {
  kind: typeof Kind.Confirm;
  slot: number;
  id: Buffer;
  size: number;
  hash: bigint;
  /** §2.1: in a session with a shared secret, the HMAC that makes the confirmation unforgeable. */
  tag?: Buffer;
}
/** §2.1: a random nonce the peer proves the shared secret against. */
export interface ChallengeFrame {
  kind: typeof Kind.Challenge;
  nonce: Buffer;
}
/** §2.1: proof of the shared secret over both nonces and the version. */
export interface ProofFrame {
  kind: typeof Kind.Proof;
  proof: Buffer;
}
export interface ErrorFrame {
  kind: typeof Kind.Error;
  code: number;
  message: string;
}
export interface SessionFrame {
  kind: typeof Kind.Session;
  id: Buffer;
}
/** v3: a piece of a stream, with the xxHash64 of this piece alone. */
export interface ChunkFrame {
  kind: typeof Kind.Chunk;
  slot: number;
  offset: number;
  hash: bigint;
  payload: Payload;
}
/** v3: the stream's bytes before `offset` are durable on the receiver. */
export interface AckFrame {
  kind: typeof Kind.Ack;
  slot: number;
  offset: number;
}
/** v3: the stream is over: its length and the xxHash64 of all of it. */
export interface TrailerFrame {
  kind: typeof Kind.Trailer;
  slot: number;
  size: number;
  hash: bigint;
}
/**
 * v5: the item in `slot` is whole on the receiver, which is still making it durable or waiting
 * for its application (§4.14): the connection is alive. It confirms nothing.
 */
export interface WorkingFrame {
  kind: typeof Kind.Working;
  slot: number;
}
/** v4: a message for the receiving application; its payload follows as DATA, then END (§4.12). */
export interface MessageFrame {
  kind: typeof Kind.Message;
  slot: number;
  size: number;
  /** The caller's idempotency key: the same on every retry, and the receiver's dedup key. */
  key: string;
  /** A label for the application; may be empty. */
  name: string;
  /** Small string pairs carried to the application, in order. */
  meta: Array<[string, string]>;
}
/** v4: the receiving application took the message (§4.13): its size and hash echoed, and its reply. */
export interface ResultFrame {
  kind: typeof Kind.Result;
  slot: number;
  /** The message's id (§4.12: derived from its key). */
  id: Buffer;
  size: number;
  hash: bigint;
  /** Taken earlier: answered from the receiver's dedup record, the application not called again. */
  duplicate: boolean;
  reply: Buffer;
  /** §2.1: in a session with a shared secret, the HMAC that makes the result unforgeable. */
  tag?: Buffer;
}
export type Frame =
  | MessageFrame
  | ResultFrame
  | OfferFrame
  | AcceptFrame
  | RejectFrame
  | DataFrame
  | EndFrame
  | ConfirmFrame
  | ErrorFrame
  | SessionFrame
  | ChunkFrame
  | AckFrame
  | TrailerFrame
  | WorkingFrame
  | ChallengeFrame
  | ProofFrame;

/** §2: the 8 bytes each side sends first. */
export function encodeHello(hello: Hello): Buffer {
  return new BufferWriter(HELLO_LEN)
    .bytes('magic', MAGIC, MAGIC.length)
    .u8('min version', hello.minVersion)
    .u8('max version', hello.maxVersion)
    .u8('role', hello.role)
    .u8('flags', hello.secret ? HelloFlag.Secret : 0)
    .finish();
}

/** §2: returns undefined when the bytes are not an ackship hello at all. */
export function decodeHello(bytes: Buffer): Hello | undefined {
  if (bytes.length !== HELLO_LEN || !bytes.subarray(0, 4).equals(MAGIC)) return undefined;
  const r = new BufferReader(bytes.subarray(MAGIC.length));
  const hello: Hello = { minVersion: r.u8(), maxVersion: r.u8(), role: r.u8() as Role };
  // Other bits are reserved: ignored, as versions before §2.1 ignored the whole byte.
  if (r.u8() & HelloFlag.Secret) hello.secret = true;
  return hello;
}

/** The frame header (§3) and the fixed part of a body, as one buffer filled by a writer. */
function fixed(kind: Kind, fixedLen: number, variableLen = 0): BufferWriter {
  return new BufferWriter(FRAME_HEADER_LEN + fixedLen)
    .u8('frame kind', kind)
    .u32('body length', fixedLen + variableLen);
}

function clipText(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  return bytes.length <= MAX_TEXT_LEN ? bytes : bytes.subarray(0, MAX_TEXT_LEN);
}

/** A variable part of at most `max` bytes, sent as its own buffer. */
function upTo(what: string, value: Buffer, max: number): Buffer {
  if (value.length > max) throw new EncodeError(`${what} is ${value.length} bytes, more than ${max}`);
  return value;
}

/** A frame's payload, in its parts, when it is at most `max` bytes. */
function payloadUpTo(
  what: string,
  payload: Payload,
  max: number,
): { parts: readonly Buffer[]; length: number } {
  const length = payloadLength(payload);
  if (length > max) throw new EncodeError(`${what} is ${length} bytes, more than ${max}`);
  return { parts: payloadParts(payload), length };
}

/** A variable part of exactly `length` bytes, sent as its own buffer. */
function exactly(what: string, value: Buffer, length: number): Buffer {
  if (value.length !== length) throw new EncodeError(`${what} must be ${length} bytes, got ${value.length}`);
  return value;
}

/**
 * Encodes one frame as buffers to be written in order. A DATA payload or a name is never
 * copied: it is returned as its own buffer after the fixed part. A field that does not fit
 * throws an EncodeError: nothing of the frame is returned.
 */
export function encodeFrame(frame: Frame): Buffer[] {
  switch (frame.kind) {
    case Kind.Offer: {
      const name = upTo('OFFER name', frame.name, MAX_NAME_LEN);
      const flags =
        (frame.mode !== undefined ? OfferFlag.HasMode : 0) |
        (frame.mtimeMs !== undefined ? OfferFlag.HasMtime : 0) |
        (frame.directory ? OfferFlag.Directory : 0) |
        (frame.stream ? OfferFlag.Stream : 0) |
        (frame.query ? OfferFlag.Query : 0) |
        (frame.eager ? OfferFlag.Eager : 0);
      const head = fixed(Kind.Offer, OFFER_FIXED_LEN, name.length)
        .u32('slot', frame.slot)
        .bytes('transfer id', frame.id, TRANSFER_ID_LEN)
        .length('declared size', frame.size)
        .u8('flags', flags)
        .u32('mode', frame.mode ?? 0)
        .i64('mtime_ms', Math.trunc(frame.mtimeMs ?? 0))
        .finish();
      return [head, name];
    }
    case Kind.Accept:
      return [
        fixed(Kind.Accept, ACCEPT_LEN)
          .u32('slot', frame.slot)
          .length('offset', frame.offset)
          .u64('prefix hash', frame.prefixHash)
          .finish(),
      ];
    case Kind.Reject: {
      const reason = clipText(frame.reason);
      const head = fixed(Kind.Reject, REJECT_FIXED_LEN, reason.length)
        .u32('slot', frame.slot)
        .u16('reject code', frame.code)
        .finish();
      return [head, reason];
    }
    case Kind.Data: {
      const payload = payloadUpTo('DATA payload', frame.payload, MAX_CHUNK_LEN);
      const head = fixed(Kind.Data, DATA_FIXED_LEN, payload.length)
        .u32('slot', frame.slot)
        .length('offset', frame.offset)
        .finish();
      return [head, ...payload.parts];
    }
    case Kind.End:
      return [fixed(Kind.End, END_LEN).u32('slot', frame.slot).u64('hash', frame.hash).finish()];
    case Kind.Confirm: {
      const tag = frame.tag === undefined ? undefined : exactly('CONFIRM tag', frame.tag, MAC_LEN);
      const head = fixed(Kind.Confirm, CONFIRM_LEN, tag?.length ?? 0)
        .u32('slot', frame.slot)
        .bytes('transfer id', frame.id, TRANSFER_ID_LEN)
        .length('size', frame.size)
        .u64('hash', frame.hash)
        .finish();
      return tag === undefined ? [head] : [head, tag];
    }
    case Kind.Challenge:
      return [
        fixed(Kind.Challenge, 0, NONCE_LEN).finish(),
        exactly('CHALLENGE nonce', frame.nonce, NONCE_LEN),
      ];
    case Kind.Proof:
      return [fixed(Kind.Proof, 0, MAC_LEN).finish(), exactly('PROOF', frame.proof, MAC_LEN)];
    case Kind.Session:
      return [fixed(Kind.Session, SESSION_LEN).bytes('session id', frame.id, SESSION_LEN).finish()];
    case Kind.Chunk: {
      const payload = payloadUpTo('CHUNK payload', frame.payload, MAX_CHUNK_LEN);
      const head = fixed(Kind.Chunk, CHUNK_FIXED_LEN, payload.length)
        .u32('slot', frame.slot)
        .length('offset', frame.offset)
        .u64('hash', frame.hash)
        .finish();
      return [head, ...payload.parts];
    }
    case Kind.Ack:
      return [fixed(Kind.Ack, ACK_LEN).u32('slot', frame.slot).length('offset', frame.offset).finish()];
    case Kind.Working:
      return [fixed(Kind.Working, WORKING_LEN).u32('slot', frame.slot).finish()];
    case Kind.Trailer:
      return [
        fixed(Kind.Trailer, TRAILER_LEN)
          .u32('slot', frame.slot)
          .length('size', frame.size)
          .u64('hash', frame.hash)
          .finish(),
      ];
    case Kind.Message:
      return [encodeMessage(frame)];
    case Kind.Result: {
      const reply = upTo('RESULT reply', frame.reply, MAX_REPLY_LEN);
      const tag = frame.tag === undefined ? undefined : exactly('RESULT tag', frame.tag, MAC_LEN);
      const head = fixed(Kind.Result, RESULT_FIXED_LEN, reply.length + (tag?.length ?? 0))
        .u32('slot', frame.slot)
        .bytes('message id', frame.id, TRANSFER_ID_LEN)
        .length('size', frame.size)
        .u64('hash', frame.hash)
        .u8('flags', frame.duplicate ? ResultFlag.Duplicate : 0)
        .u32('reply length', reply.length)
        .finish();
      return tag === undefined ? [head, reply] : [head, reply, tag];
    }
    case Kind.Error: {
      const message = clipText(frame.message);
      return [
        fixed(Kind.Error, ERROR_FIXED_LEN, message.length).u16('error code', frame.code).finish(),
        message,
      ];
    }
  }
}

/** A u16-length-prefixed UTF-8 field of at most `max` bytes. */
function shortText(what: string, text: string, max: number): Buffer[] {
  const bytes = upTo(what, Buffer.from(text, 'utf8'), max);
  const length = Buffer.alloc(2);
  length.writeUInt16BE(bytes.length);
  return [length, bytes];
}

/** §4.12: the fixed part, then key, name and the meta block, each with its length. */
function encodeMessage(frame: MessageFrame): Buffer {
  const pairs = frame.meta.flatMap(([k, v]) => [
    ...shortText('meta key', k, MAX_META_LEN),
    ...shortText('meta value', v, MAX_META_LEN),
  ]);
  const meta = Buffer.concat([Buffer.alloc(2), ...pairs]);
  meta.writeUInt16BE(upTo('MESSAGE meta', meta, MAX_META_LEN + 2).length - 2);
  const variable = Buffer.concat([
    ...shortText('MESSAGE key', frame.key, MAX_KEY_LEN),
    ...shortText('MESSAGE name', frame.name, MAX_NAME_LEN),
    meta,
  ]);
  const head = fixed(Kind.Message, MESSAGE_FIXED_LEN, variable.length)
    .u32('slot', frame.slot)
    .length('size', frame.size)
    .u8('flags', 0)
    .finish();
  return Buffer.concat([head, variable]);
}

function malformed(message: string): ProtocolError {
  return new ProtocolError(message, ErrorCode.Malformed);
}

function expectLength(kind: string, body: Buffer, exact: number): void {
  if (body.length !== exact) throw malformed(`${kind} body is ${body.length} bytes, expected ${exact}`);
}

function expectAtLeast(kind: string, body: Buffer, min: number): void {
  if (body.length < min) throw malformed(`${kind} body is ${body.length} bytes, expected at least ${min}`);
}

/** §3: sizes and offsets are u64 on the wire; this implementation handles up to 2^53 − 1. */
function readLength(body: BufferReader, what: string): number {
  const value = body.u64();
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed(`${what} ${value} is too large`);
  return Number(value);
}

const KNOWN_OFFER_FLAGS =
  OfferFlag.HasMode |
  OfferFlag.HasMtime |
  OfferFlag.Directory |
  OfferFlag.Stream |
  OfferFlag.Query |
  OfferFlag.Eager;

const utf8 = new TextDecoder('utf-8', { fatal: false });
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** A u16-length-prefixed field of at most `max` bytes that must be valid UTF-8 (§4.12). */
function readShortText(r: BufferReader, what: string, max: number): string {
  if (r.remaining < 2) throw malformed(`MESSAGE ends inside the length of its ${what}`);
  const length = r.u16();
  if (length > max) throw malformed(`MESSAGE ${what} is ${length} bytes, more than ${max}`);
  if (r.remaining < length) throw malformed(`MESSAGE ends inside its ${what}`);
  try {
    return strictUtf8.decode(r.view(length));
  } catch {
    throw malformed(`MESSAGE ${what} is not valid UTF-8`);
  }
}

function decodeMessage(body: Buffer): MessageFrame {
  expectAtLeast('MESSAGE', body, MESSAGE_FIXED_LEN);
  const r = new BufferReader(body);
  const slot = r.u32();
  const size = readLength(r, 'size');
  const flags = r.u8();
  if (flags !== 0) throw malformed(`MESSAGE has unknown flags 0x${flags.toString(16).padStart(2, '0')}`);
  const key = readShortText(r, 'key', MAX_KEY_LEN);
  if (key.length === 0) throw malformed('MESSAGE key is empty');
  const name = readShortText(r, 'name', MAX_NAME_LEN);
  if (r.remaining < 2) throw malformed('MESSAGE ends before its meta block');
  const metaLength = r.u16();
  if (metaLength > MAX_META_LEN)
    throw malformed(`MESSAGE meta is ${metaLength} bytes, more than ${MAX_META_LEN}`);
  if (r.remaining !== metaLength)
    throw malformed(`MESSAGE meta block declares ${metaLength} bytes and ${r.remaining} follow`);
  const meta: Array<[string, string]> = [];
  while (r.remaining > 0)
    meta.push([readShortText(r, 'meta key', MAX_META_LEN), readShortText(r, 'meta value', MAX_META_LEN)]);
  return { kind: Kind.Message, slot, size, key, name, meta };
}

function decodeResult(body: Buffer): ResultFrame {
  expectAtLeast('RESULT', body, RESULT_FIXED_LEN);
  const r = new BufferReader(body);
  const slot = r.u32();
  const id = r.copy(TRANSFER_ID_LEN);
  const size = readLength(r, 'size');
  const hash = r.u64();
  const flags = r.u8();
  if (flags & ~ResultFlag.Duplicate)
    throw malformed(`RESULT has unknown flags 0x${flags.toString(16).padStart(2, '0')}`);
  const replyLength = r.u32();
  if (replyLength > MAX_REPLY_LEN)
    throw malformed(`RESULT reply is ${replyLength} bytes, more than ${MAX_REPLY_LEN}`);
  if (r.remaining !== replyLength && r.remaining !== replyLength + MAC_LEN) {
    throw malformed(`RESULT declares a ${replyLength}-byte reply and ${r.remaining} bytes follow`);
  }
  const frame: ResultFrame = {
    kind: Kind.Result,
    slot,
    id,
    size,
    hash,
    duplicate: (flags & ResultFlag.Duplicate) !== 0,
    reply: r.copy(replyLength),
  };
  if (r.remaining > 0) frame.tag = r.copy(MAC_LEN);
  return frame;
}

/** Decodes a frame body whose kind and length the parser has already checked against §3. */
export function decodeBody(kind: number, body: Buffer): Frame {
  const r = new BufferReader(body);
  switch (kind) {
    case Kind.Offer: {
      expectAtLeast('OFFER', body, OFFER_FIXED_LEN);
      const slot = r.u32();
      const id = r.copy(TRANSFER_ID_LEN);
      const size = readLength(r, 'declared size');
      const flags = r.u8();
      const mode = r.u32();
      const mtimeMs = r.i64();
      const frame: OfferFrame = {
        kind: Kind.Offer,
        slot,
        id,
        size,
        name: r.copy(body.length - OFFER_FIXED_LEN),
      };
      if (flags & OfferFlag.HasMode) frame.mode = mode;
      if (flags & OfferFlag.HasMtime) frame.mtimeMs = Number(mtimeMs);
      if (flags & OfferFlag.Directory) frame.directory = true;
      if (flags & OfferFlag.Stream) frame.stream = true;
      if (flags & OfferFlag.Query) frame.query = true;
      if (flags & OfferFlag.Eager) frame.eager = true;
      if (flags & ~KNOWN_OFFER_FLAGS) {
        throw malformed(`OFFER has unknown flags 0x${flags.toString(16).padStart(2, '0')}`);
      }
      if (frame.directory && frame.stream)
        throw malformed('an OFFER cannot be both a directory and a stream');
      if ((frame.directory || frame.stream) && frame.size !== 0) {
        throw malformed(`a ${frame.directory ? 'directory' : 'stream'} OFFER must declare size 0`);
      }
      if (frame.eager && (frame.directory || frame.stream || frame.query))
        throw malformed('only a file OFFER may be eager');
      if (frame.eager && frame.size > MAX_EAGER_SIZE)
        throw malformed(`an eager OFFER declares at most ${MAX_EAGER_SIZE} bytes, not ${frame.size}`);
      return frame;
    }
    case Kind.Accept:
      expectLength('ACCEPT', body, ACCEPT_LEN);
      return { kind: Kind.Accept, slot: r.u32(), offset: readLength(r, 'offset'), prefixHash: r.u64() };
    case Kind.Reject:
      expectAtLeast('REJECT', body, REJECT_FIXED_LEN);
      return { kind: Kind.Reject, slot: r.u32(), code: r.u16(), reason: utf8.decode(r.rest()) };
    case Kind.Data:
      expectAtLeast('DATA', body, DATA_FIXED_LEN);
      return { kind: Kind.Data, slot: r.u32(), offset: readLength(r, 'offset'), payload: r.rest() };
    case Kind.End:
      expectLength('END', body, END_LEN);
      return { kind: Kind.End, slot: r.u32(), hash: r.u64() };
    case Kind.Confirm: {
      if (body.length !== CONFIRM_LEN && body.length !== CONFIRM_LEN + MAC_LEN) {
        throw malformed(
          `CONFIRM body is ${body.length} bytes, expected ${CONFIRM_LEN} or ${CONFIRM_LEN + MAC_LEN}`,
        );
      }
      const frame: ConfirmFrame = {
        kind: Kind.Confirm,
        slot: r.u32(),
        id: r.copy(TRANSFER_ID_LEN),
        size: readLength(r, 'size'),
        hash: r.u64(),
      };
      if (body.length > CONFIRM_LEN) frame.tag = r.copy(MAC_LEN);
      return frame;
    }
    case Kind.Challenge:
      expectLength('CHALLENGE', body, NONCE_LEN);
      return { kind: Kind.Challenge, nonce: r.copy(NONCE_LEN) };
    case Kind.Proof:
      expectLength('PROOF', body, MAC_LEN);
      return { kind: Kind.Proof, proof: r.copy(MAC_LEN) };
    case Kind.Error:
      expectAtLeast('ERROR', body, ERROR_FIXED_LEN);
      return { kind: Kind.Error, code: r.u16(), message: utf8.decode(r.rest()) };
    case Kind.Session:
      expectLength('SESSION', body, SESSION_LEN);
      return { kind: Kind.Session, id: r.copy(SESSION_LEN) };
    case Kind.Chunk:
      expectAtLeast('CHUNK', body, CHUNK_FIXED_LEN);
      return {
        kind: Kind.Chunk,
        slot: r.u32(),
        offset: readLength(r, 'offset'),
        hash: r.u64(),
        payload: r.rest(),
      };
    case Kind.Ack:
      expectLength('ACK', body, ACK_LEN);
      return { kind: Kind.Ack, slot: r.u32(), offset: readLength(r, 'offset') };
    case Kind.Trailer:
      expectLength('TRAILER', body, TRAILER_LEN);
      return { kind: Kind.Trailer, slot: r.u32(), size: readLength(r, 'size'), hash: r.u64() };
    case Kind.Working:
      expectLength('WORKING', body, WORKING_LEN);
      return { kind: Kind.Working, slot: r.u32() };
    case Kind.Message:
      return decodeMessage(body);
    case Kind.Result:
      return decodeResult(body);
    default:
      throw malformed(`unknown frame kind 0x${kind.toString(16).padStart(2, '0')}`);
  }
}
