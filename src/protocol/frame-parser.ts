// Streaming parser: bytes in, hello and frames out (PROTOCOL.md §2–§3). No I/O: a driver
// pushes socket chunks into it. "Need more bytes" is not an error; a violation throws a
// ProtocolError and the parser stays failed.
import { HandshakeError, ProtocolError } from '../errors.js';
import { type ChunkFrame, type DataFrame, decodeBody, decodeHello, type Frame, type Hello } from './codec.js';
import {
  CHUNK_FIXED_LEN,
  DATA_FIXED_LEN,
  ErrorCode,
  FRAME_HEADER_LEN,
  HELLO_LEN,
  Kind,
  MAGIC,
  MAX_BODY_LEN,
} from './constants.js';

export type Incoming = { kind: 'hello'; hello: Hello } | Frame;

/** Frames whose body is mostly payload, and may take a slow link a while: their fixed fields' length. */
const PAYLOAD_FIXED_LEN: ReadonlyMap<number, number> = new Map([
  [Kind.Data, DATA_FIXED_LEN],
  [Kind.Chunk, CHUNK_FIXED_LEN],
]);

const State = {
  Hello: 0, // waiting for the peer's 8-byte hello
  Header: 1, // waiting for a frame's kind and length
  Body: 2, // waiting for `bodyLen` bytes of body
  Failed: 3,
} as const;
type State = (typeof State)[keyof typeof State];

/** Describes bytes for an error message without printing them raw (they may be a terminal escape). */
function describeBytes(bytes: Buffer): string {
  return JSON.stringify(bytes.toString('latin1')).replace(/[^\x20-\x7e]/g, '?');
}

export class FrameParser {
  #chunks: Buffer[] = [];
  #buffered = 0;
  #state: State = State.Hello;
  #kind = 0;
  #bodyLen = 0;

  /** Bytes received but not yet parsed into a message. */
  get buffered(): number {
    return this.#buffered;
  }

  /**
   * What an incomplete message is: `payload` while in the body of a DATA or CHUNK frame,
   * `message` while in the hello (also before its first byte) or in any other frame, `none`
   * between frames.
   */
  get partial(): 'none' | 'message' | 'payload' {
    if (this.#state === State.Hello) return 'message';
    if (this.#state === State.Body) return PAYLOAD_FIXED_LEN.has(this.#kind) ? 'payload' : 'message';
    return this.#buffered > 0 ? 'message' : 'none';
  }

  /** Feeds bytes; returns every message they complete, in order. */
  push(chunk: Buffer): Incoming[] {
    if (this.#state === State.Failed) throw new ProtocolError('parser already failed');
    if (chunk.length > 0) {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
    }
    const out: Incoming[] = [];
    try {
      for (;;) {
        const message = this.#step();
        if (message === undefined) break;
        if (message !== null) out.push(message);
      }
    } catch (err) {
      this.#state = State.Failed;
      throw err;
    }
    return out;
  }

  /** One step of the loop: a message, null for progress without a message, undefined to wait. */
  #step(): Incoming | null | undefined {
    switch (this.#state) {
      case State.Hello: {
        // Fail on the first byte that is not the magic, so a peer that speaks something else
        // gets an answer at once instead of after a timeout.
        const seen = this.#peek(Math.min(this.#buffered, MAGIC.length));
        if (!seen.equals(MAGIC.subarray(0, seen.length))) {
          throw new HandshakeError(`peer does not speak ackship (it sent ${describeBytes(seen)})`);
        }
        if (this.#buffered < HELLO_LEN) return undefined;
        const hello = decodeHello(this.#consume(HELLO_LEN)) as Hello;
        this.#state = State.Header;
        return { kind: 'hello', hello };
      }
      case State.Header: {
        if (this.#buffered < FRAME_HEADER_LEN) return undefined;
        const head = this.#consume(FRAME_HEADER_LEN);
        this.#kind = head.readUInt8(0);
        this.#bodyLen = head.readUInt32BE(1);
        const cap = MAX_BODY_LEN[this.#kind as keyof typeof MAX_BODY_LEN];
        if (cap === undefined) {
          throw new ProtocolError(`unknown frame kind 0x${this.#kind.toString(16).padStart(2, '0')}`);
        }
        if (this.#bodyLen > cap) {
          throw new ProtocolError(
            `frame kind 0x${this.#kind.toString(16).padStart(2, '0')} declares ${this.#bodyLen} bytes, limit ${cap}`,
            ErrorCode.FrameTooLarge,
          );
        }
        this.#state = State.Body;
        return null;
      }
      case State.Body: {
        if (this.#buffered < this.#bodyLen) return undefined;
        const frame = this.#decodeBody();
        this.#state = State.Header;
        return frame;
      }
      default:
        return undefined;
    }
  }

  /** The frame whose whole body is buffered; a DATA or CHUNK payload stays in the views it came in. */
  #decodeBody(): Frame {
    const fixed = PAYLOAD_FIXED_LEN.get(this.#kind);
    const head = this.#chunks[0];
    // Within one read, or too short to hold its fixed fields (decodeBody says so): as it is.
    if (fixed === undefined || head === undefined || head.length >= this.#bodyLen || this.#bodyLen < fixed)
      return decodeBody(this.#kind, this.#consume(this.#bodyLen));
    const frame = decodeBody(this.#kind, this.#consume(fixed)) as DataFrame | ChunkFrame;
    frame.payload = this.#consumeViews(this.#bodyLen - fixed);
    return frame;
  }

  /** Takes n bytes off the front as views of the chunks they are in. */
  #consumeViews(n: number): Buffer[] {
    this.#buffered -= n;
    const views: Buffer[] = [];
    for (let left = n; left > 0; ) {
      const chunk = this.#chunks[0] as Buffer;
      if (chunk.length <= left) {
        views.push(chunk);
        this.#chunks.shift();
        left -= chunk.length;
      } else {
        views.push(chunk.subarray(0, left));
        this.#chunks[0] = chunk.subarray(left);
        left = 0;
      }
    }
    return views;
  }

  #peek(n: number): Buffer {
    const head = this.#chunks[0];
    if (head !== undefined && head.length >= n) return head.subarray(0, n);
    return Buffer.concat(this.#chunks, this.#buffered).subarray(0, n);
  }

  /** Takes n bytes off the front: a view when one chunk holds them, one copy when they span chunks. */
  #consume(n: number): Buffer {
    this.#buffered -= n;
    const head = this.#chunks[0];
    if (head !== undefined && head.length === n) {
      this.#chunks.shift();
      return head;
    }
    if (head !== undefined && head.length > n) {
      this.#chunks[0] = head.subarray(n);
      return head.subarray(0, n);
    }
    // Spanning chunks: copied into a fresh buffer, which the frame may keep.
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const chunk = this.#chunks[0] as Buffer;
      const take = Math.min(chunk.length, n - at);
      chunk.copy(out, at, 0, take);
      at += take;
      if (take === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(take);
    }
    return out;
  }
}
