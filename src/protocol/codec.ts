// Pure encoders and decoders of hellos and frame bodies (PROTOCOL.md §2–§4).
import { ProtocolError } from '../errors.js';
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
  MAX_TEXT_LEN,
  NONCE_LEN,
  OFFER_FIXED_LEN,
  OfferFlag,
  REJECT_FIXED_LEN,
  type Role,
  SESSION_LEN,
  TRAILER_LEN,
  TRANSFER_ID_LEN,
} from './constants.js';

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
  payload: Buffer;
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
  payload: Buffer;
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
export type Frame =
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
  | ChallengeFrame
  | ProofFrame;

/** §2: the 8 bytes each side sends first. */
export function encodeHello(hello: Hello): Buffer {
  const out = Buffer.alloc(HELLO_LEN);
  MAGIC.copy(out, 0);
  out.writeUInt8(hello.minVersion, 4);
  out.writeUInt8(hello.maxVersion, 5);
  out.writeUInt8(hello.role, 6);
  out.writeUInt8(hello.secret ? HelloFlag.Secret : 0, 7);
  return out;
}

/** §2: returns undefined when the bytes are not an ackship hello at all. */
export function decodeHello(bytes: Buffer): Hello | undefined {
  if (bytes.length !== HELLO_LEN || !bytes.subarray(0, 4).equals(MAGIC)) return undefined;
  const hello: Hello = {
    minVersion: bytes.readUInt8(4),
    maxVersion: bytes.readUInt8(5),
    role: bytes.readUInt8(6) as Role,
  };
  // Other bits are reserved: ignored, as versions before §2.1 ignored the whole byte.
  if (bytes.readUInt8(7) & HelloFlag.Secret) hello.secret = true;
  return hello;
}

function header(kind: Kind, bodyLen: number, fixedLen: number): { buf: Buffer; at: number } {
  const buf = Buffer.allocUnsafe(FRAME_HEADER_LEN + fixedLen);
  buf.writeUInt8(kind, 0);
  buf.writeUInt32BE(bodyLen, 1);
  return { buf, at: FRAME_HEADER_LEN };
}

function clipText(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  return bytes.length <= MAX_TEXT_LEN ? bytes : bytes.subarray(0, MAX_TEXT_LEN);
}

/**
 * Encodes one frame as buffers to be written in order. A DATA payload or a name is never
 * copied: it is returned as its own buffer after the fixed part.
 */
export function encodeFrame(frame: Frame): Buffer[] {
  switch (frame.kind) {
    case Kind.Offer: {
      const { buf, at } = header(Kind.Offer, OFFER_FIXED_LEN + frame.name.length, OFFER_FIXED_LEN);
      let o = buf.writeUInt32BE(frame.slot, at);
      o += frame.id.copy(buf, o);
      o = buf.writeBigUInt64BE(BigInt(frame.size), o);
      const flags =
        (frame.mode !== undefined ? OfferFlag.HasMode : 0) |
        (frame.mtimeMs !== undefined ? OfferFlag.HasMtime : 0) |
        (frame.directory ? OfferFlag.Directory : 0) |
        (frame.stream ? OfferFlag.Stream : 0);
      o = buf.writeUInt8(flags, o);
      o = buf.writeUInt32BE(frame.mode ?? 0, o);
      buf.writeBigInt64BE(BigInt(Math.trunc(frame.mtimeMs ?? 0)), o);
      return [buf, frame.name];
    }
    case Kind.Accept: {
      const { buf, at } = header(Kind.Accept, ACCEPT_LEN, ACCEPT_LEN);
      const o = buf.writeBigUInt64BE(BigInt(frame.offset), buf.writeUInt32BE(frame.slot, at));
      buf.writeBigUInt64BE(frame.prefixHash, o);
      return [buf];
    }
    case Kind.Reject: {
      const reason = clipText(frame.reason);
      const { buf, at } = header(Kind.Reject, REJECT_FIXED_LEN + reason.length, REJECT_FIXED_LEN);
      buf.writeUInt16BE(frame.code, buf.writeUInt32BE(frame.slot, at));
      return [buf, reason];
    }
    case Kind.Data: {
      const { buf, at } = header(Kind.Data, DATA_FIXED_LEN + frame.payload.length, DATA_FIXED_LEN);
      buf.writeBigUInt64BE(BigInt(frame.offset), buf.writeUInt32BE(frame.slot, at));
      return [buf, frame.payload];
    }
    case Kind.End: {
      const { buf, at } = header(Kind.End, END_LEN, END_LEN);
      buf.writeBigUInt64BE(frame.hash, buf.writeUInt32BE(frame.slot, at));
      return [buf];
    }
    case Kind.Confirm: {
      const tag = frame.tag ?? Buffer.alloc(0);
      const { buf, at } = header(Kind.Confirm, CONFIRM_LEN + tag.length, CONFIRM_LEN);
      let o = buf.writeUInt32BE(frame.slot, at);
      o += frame.id.copy(buf, o);
      buf.writeBigUInt64BE(frame.hash, buf.writeBigUInt64BE(BigInt(frame.size), o));
      return tag.length > 0 ? [buf, tag] : [buf];
    }
    case Kind.Challenge: {
      const { buf } = header(Kind.Challenge, NONCE_LEN, 0);
      return [buf, frame.nonce];
    }
    case Kind.Proof: {
      const { buf } = header(Kind.Proof, MAC_LEN, 0);
      return [buf, frame.proof];
    }
    case Kind.Session: {
      const { buf, at } = header(Kind.Session, SESSION_LEN, SESSION_LEN);
      frame.id.copy(buf, at);
      return [buf];
    }
    case Kind.Chunk: {
      const { buf, at } = header(Kind.Chunk, CHUNK_FIXED_LEN + frame.payload.length, CHUNK_FIXED_LEN);
      const o = buf.writeBigUInt64BE(BigInt(frame.offset), buf.writeUInt32BE(frame.slot, at));
      buf.writeBigUInt64BE(frame.hash, o);
      return [buf, frame.payload];
    }
    case Kind.Ack: {
      const { buf, at } = header(Kind.Ack, ACK_LEN, ACK_LEN);
      buf.writeBigUInt64BE(BigInt(frame.offset), buf.writeUInt32BE(frame.slot, at));
      return [buf];
    }
    case Kind.Trailer: {
      const { buf, at } = header(Kind.Trailer, TRAILER_LEN, TRAILER_LEN);
      const o = buf.writeBigUInt64BE(BigInt(frame.size), buf.writeUInt32BE(frame.slot, at));
      buf.writeBigUInt64BE(frame.hash, o);
      return [buf];
    }
    case Kind.Error: {
      const message = clipText(frame.message);
      const { buf, at } = header(Kind.Error, ERROR_FIXED_LEN + message.length, ERROR_FIXED_LEN);
      buf.writeUInt16BE(frame.code, at);
      return [buf, message];
    }
  }
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
function readLength(body: Buffer, at: number, what: string): number {
  const value = body.readBigUInt64BE(at);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed(`${what} ${value} is too large`);
  return Number(value);
}

const KNOWN_OFFER_FLAGS = OfferFlag.HasMode | OfferFlag.HasMtime | OfferFlag.Directory | OfferFlag.Stream;

const utf8 = new TextDecoder('utf-8', { fatal: false });

/** Decodes a frame body whose kind and length the parser has already checked against §3. */
export function decodeBody(kind: number, body: Buffer): Frame {
  switch (kind) {
    case Kind.Offer: {
      expectAtLeast('OFFER', body, OFFER_FIXED_LEN);
      const flags = body.readUInt8(28);
      const frame: OfferFrame = {
        kind: Kind.Offer,
        slot: body.readUInt32BE(0),
        id: Buffer.from(body.subarray(4, 4 + TRANSFER_ID_LEN)),
        size: readLength(body, 20, 'declared size'),
        name: Buffer.from(body.subarray(OFFER_FIXED_LEN)),
      };
      if (flags & OfferFlag.HasMode) frame.mode = body.readUInt32BE(29);
      if (flags & OfferFlag.HasMtime) frame.mtimeMs = Number(body.readBigInt64BE(33));
      if (flags & OfferFlag.Directory) frame.directory = true;
      if (flags & OfferFlag.Stream) frame.stream = true;
      if (flags & ~KNOWN_OFFER_FLAGS) {
        throw malformed(`OFFER has unknown flags 0x${flags.toString(16).padStart(2, '0')}`);
      }
      if (frame.directory && frame.stream)
        throw malformed('an OFFER cannot be both a directory and a stream');
      if ((frame.directory || frame.stream) && frame.size !== 0) {
        throw malformed(`a ${frame.directory ? 'directory' : 'stream'} OFFER must declare size 0`);
      }
      return frame;
    }
    case Kind.Accept:
      expectLength('ACCEPT', body, ACCEPT_LEN);
      return {
        kind: Kind.Accept,
        slot: body.readUInt32BE(0),
        offset: readLength(body, 4, 'offset'),
        prefixHash: body.readBigUInt64BE(12),
      };
    case Kind.Reject:
      expectAtLeast('REJECT', body, REJECT_FIXED_LEN);
      return {
        kind: Kind.Reject,
        slot: body.readUInt32BE(0),
        code: body.readUInt16BE(4),
        reason: utf8.decode(body.subarray(REJECT_FIXED_LEN)),
      };
    case Kind.Data:
      expectAtLeast('DATA', body, DATA_FIXED_LEN);
      return {
        kind: Kind.Data,
        slot: body.readUInt32BE(0),
        offset: readLength(body, 4, 'offset'),
        payload: body.subarray(DATA_FIXED_LEN),
      };
    case Kind.End:
      expectLength('END', body, END_LEN);
      return { kind: Kind.End, slot: body.readUInt32BE(0), hash: body.readBigUInt64BE(4) };
    case Kind.Confirm: {
      if (body.length !== CONFIRM_LEN && body.length !== CONFIRM_LEN + MAC_LEN) {
        throw malformed(
          `CONFIRM body is ${body.length} bytes, expected ${CONFIRM_LEN} or ${CONFIRM_LEN + MAC_LEN}`,
        );
      }
      const frame: ConfirmFrame = {
        kind: Kind.Confirm,
        slot: body.readUInt32BE(0),
        id: Buffer.from(body.subarray(4, 4 + TRANSFER_ID_LEN)),
        size: readLength(body, 20, 'size'),
        hash: body.readBigUInt64BE(28),
      };
      if (body.length > CONFIRM_LEN) frame.tag = Buffer.from(body.subarray(CONFIRM_LEN));
      return frame;
    }
    case Kind.Challenge:
      expectLength('CHALLENGE', body, NONCE_LEN);
      return { kind: Kind.Challenge, nonce: Buffer.from(body) };
    case Kind.Proof:
      expectLength('PROOF', body, MAC_LEN);
      return { kind: Kind.Proof, proof: Buffer.from(body) };
    case Kind.Error:
      expectAtLeast('ERROR', body, ERROR_FIXED_LEN);
      return {
        kind: Kind.Error,
        code: body.readUInt16BE(0),
        message: utf8.decode(body.subarray(ERROR_FIXED_LEN)),
      };
    case Kind.Session:
      expectLength('SESSION', body, SESSION_LEN);
      return { kind: Kind.Session, id: Buffer.from(body) };
    case Kind.Chunk:
      expectAtLeast('CHUNK', body, CHUNK_FIXED_LEN);
      return {
        kind: Kind.Chunk,
        slot: body.readUInt32BE(0),
        offset: readLength(body, 4, 'offset'),
        hash: body.readBigUInt64BE(12),
        payload: body.subarray(CHUNK_FIXED_LEN),
      };
    case Kind.Ack:
      expectLength('ACK', body, ACK_LEN);
      return { kind: Kind.Ack, slot: body.readUInt32BE(0), offset: readLength(body, 4, 'offset') };
    case Kind.Trailer:
      expectLength('TRAILER', body, TRAILER_LEN);
      return {
        kind: Kind.Trailer,
        slot: body.readUInt32BE(0),
        size: readLength(body, 4, 'size'),
        hash: body.readBigUInt64BE(12),
      };
    default:
      throw malformed(`unknown frame kind 0x${kind.toString(16).padStart(2, '0')}`);
  }
}
