// A message's payload on its way into the application's handler (PROTOCOL.md §4.12): DATA is
// handed to the handler's stream as it arrives, and the stream ends only once the whole length
// arrived and its xxHash64 matched END, so a handler that reads to the end has checked bytes.
// When the handler falls behind, `write` waits, and with it the connection's reads: the sender
// slows down instead of the receiver buffering without bound.
import { Readable } from 'node:stream';
import { createHasher, type Hasher, xxh64 } from '../hash.js';
import type { Payload } from '../protocol/payload.js';

/** How much of a message waits in memory for a handler that is not reading yet. */
const BUFFERED = 1024 * 1024;

const EMPTY = Buffer.alloc(0);

export class PayloadError extends Error {}

export class Intake {
  readonly size: number;
  /**
   * Made at the second DATA: a message in one DATA (most of them) is hashed in one shot at its
   * END, without a streaming hasher's state.
   */
  #hasher: Hasher | undefined;
  #first: Buffer | undefined;
  /**
   * What arrived before the handler took the payload (at most BUFFERED bytes of it), and all of
   * it once the handler asked for bytes(): no stream exists unless the handler asks for one.
   */
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #stream: Readable | undefined;
  #received = 0;
  /** The handler is done with the payload (it settled): what still comes is hashed, not kept. */
  #released = false;
  #consumed: 'stream' | 'bytes' | undefined;
  #room: (() => void) | undefined;
  #verified!: { resolve: (hash: bigint) => void; reject: (err: Error) => void };
  /** The END's hash once the whole payload arrived and matched it; rejects otherwise. */
  readonly verified: Promise<bigint>;

  constructor(size: number) {
    this.size = size;
    this.verified = new Promise((resolve, reject) => {
      this.#verified = { resolve, reject };
    });
    this.verified.catch(() => {});
  }

  /** The payload as it arrives: ends after END matched, errors if it did not or the sender vanished. */
  stream(): Readable {
    this.#consume('stream');
    const stream = new Readable({ highWaterMark: BUFFERED, read: () => this.#wake() });
    // Its errors are for a handler that reads it; one that does not must not crash the receiver.
    stream.on('error', () => {});
    for (const chunk of this.#pending.splice(0)) stream.push(chunk);
    this.#pendingBytes = 0;
    this.#stream = stream;
    this.verified.then(
      () => stream.push(null),
      (err: Error) => stream.destroy(err),
    );
    return stream;
  }

  /** The whole payload, once it arrived and matched END. */
  async bytes(): Promise<Buffer> {
    this.#consume('bytes');
    this.#wake(); // the size was declared and bounded: all of it may wait in memory now
    await this.verified;
    // release() dropped what was kept: a handler that settled first has no payload to get.
    if (this.#released) throw new PayloadError("the item's handler settled before it had the payload");
    return Buffer.concat(this.#pending, this.#received);
  }

  #consume(how: 'stream' | 'bytes'): void {
    if (this.#consumed !== undefined)
      throw new Error(`the item's payload was already taken with ${this.#consumed}()`);
    this.#consumed = how;
  }

  /** DATA in order (the machine checked offsets); resolves when there is room for more. */
  async write(payload: Payload): Promise<void> {
    if (Buffer.isBuffer(payload)) return this.#take(payload);
    for (const part of payload) await this.#take(part);
  }

  async #take(payload: Buffer): Promise<void> {
    if (this.#received === 0 && this.#first === undefined) this.#first = payload;
    else {
      if (this.#hasher === undefined) {
        this.#hasher = createHasher();
        if (this.#first !== undefined) this.#hasher.update(this.#first);
        this.#first = undefined;
      }
      this.#hasher.update(payload);
    }
    this.#received += payload.length;
    if (this.#released) return;
    if (this.#stream !== undefined) {
      if (this.#stream.destroyed || this.#stream.push(payload)) return;
    } else {
      this.#pending.push(payload);
      this.#pendingBytes += payload.length;
      if (this.#consumed === 'bytes' || this.#pendingBytes < BUFFERED) return;
    }
    await new Promise<void>((resolve) => (this.#room = resolve));
  }

  /** END: the payload is whole; it counts only if its hash is `expected`. */
  finish(expected: bigint): boolean {
    const actual = this.#hasher?.digest() ?? xxh64(this.#first ?? EMPTY);
    if (actual !== expected) {
      this.#fail(new PayloadError('the payload failed its checksum; the sender retries it'));
      return false;
    }
    this.#verified.resolve(actual);
    return true;
  }

  /** The connection is gone before END: the handler's stream errors, and nothing may be confirmed. */
  abandon(): void {
    this.#fail(new PayloadError('the sender went away before the payload was whole'));
  }

  /** The handler settled: nothing more is kept for it, and nothing waits on it. */
  release(): void {
    this.#released = true;
    this.#pending = [];
    this.#wake();
  }

  #fail(err: Error): void {
    this.#verified.reject(err);
    this.#wake();
  }

  #wake(): void {
    const room = this.#room;
    this.#room = undefined;
    room?.();
  }
}
