// A stream (stdin) sent without spooling it (PROTOCOL.md §4.9): the bytes the receiver has not
// yet acknowledged as durable stay in memory, at most `limit` of them, so that a broken
// connection resumes from the receiver's offset without reading the input again. When the
// window is full, the input is not read: its producer waits, as it would for a slow pipe.
import type { Readable } from 'node:stream';
import { InputError, ProtocolError } from '../errors.js';
import { createHasher, hashHex } from '../hash.js';
import { MAX_CHUNK_LEN } from '../protocol/constants.js';

export class StreamWindow {
  readonly #input: Readable;
  /** Made on the first read, so that an untouched input can still be handed to a spool. */
  #reader: AsyncIterator<Buffer> | undefined;
  #handedOff = false;
  readonly #label: string;
  readonly #limit: number;
  /** Unacknowledged bytes, contiguous, the first starting at #base. */
  readonly #held: Buffer[] = [];
  #base = 0;
  #read = 0;
  #ended = false;
  readonly #hasher = createHasher();
  /**
   * The xxHash64 of the stream's bytes before each CHUNK boundary still held (and the base):
   * what a resume's prefix hash must equal. Every held piece is at most one CHUNK, so every
   * CHUNK ends on one of these, and so does every durable offset a receiver can announce.
   */
  readonly #boundaries = new Map<number, bigint>([[0, this.#hasher.digest()]]);
  #hash: bigint | undefined;
  #filling: Promise<void> | undefined;
  readonly #waiting: Array<() => void> = [];

  constructor(input: Readable, label: string, limit: number) {
    this.#input = input;
    this.#label = label;
    this.#limit = Math.max(limit, MAX_CHUNK_LEN);
  }

  /** Bytes acknowledged durable by the receiver: no longer held here. */
  get released(): number {
    return this.#base;
  }

  /** The stream's length and xxHash64, once the input ended; else undefined. */
  get total(): { size: number; hash: bigint } | undefined {
    return this.#hash === undefined ? undefined : { size: this.#read, hash: this.#hash };
  }

  /** The input itself, for a receiver that cannot take streams, if not a byte of it was read yet. */
  takeInput(): Readable | undefined {
    if (this.#reader !== undefined) return undefined;
    this.#handedOff = true;
    return this.#input;
  }

  /**
   * The receiver holds `offset` bytes durably, hashing to `prefixHash`. An offset outside what
   * we still hold, or a prefix that is not what we sent, is its fault: resuming there would
   * only fail at the TRAILER, after all of the rest was sent.
   */
  resumeAt(offset: number, prefixHash: bigint): void {
    if (offset < this.#base || offset > this.#read) {
      throw new ProtocolError(
        `receiver resumes the stream at ${offset}, but acknowledged ${this.#base} and was sent ${this.#read} bytes`,
      );
    }
    const sent = this.#boundaries.get(offset);
    if (sent === undefined)
      throw new ProtocolError(`receiver resumes the stream at ${offset}, where no CHUNK it was sent ended`);
    if (sent !== prefixHash) {
      throw new ProtocolError(
        `receiver's copy of the stream's first ${offset} bytes is not what was sent (xxh64 ${hashHex(prefixHash)}, sent ${hashHex(sent)})`,
      );
    }
    this.release(offset);
  }

  /** The receiver acknowledged the bytes before `offset` as durable: drop them. */
  release(offset: number): void {
    if (offset > this.#read) {
      throw new ProtocolError(`receiver acknowledged ${offset} bytes of a stream sent up to ${this.#read}`);
    }
    while (this.#held.length > 0) {
      const first = this.#held[0] as Buffer;
      if (this.#base + first.length > offset) break;
      this.#base += first.length;
      this.#held.shift();
    }
    if (this.#base < offset) {
      this.#held[0] = (this.#held[0] as Buffer).subarray(offset - this.#base);
      this.#base = offset;
    }
    // In increasing order, as they were added: drop those below the base, keep the base's own.
    for (const boundary of this.#boundaries.keys()) {
      if (boundary >= this.#base) break;
      this.#boundaries.delete(boundary);
    }
    this.#wake();
  }

  /**
   * The bytes at `offset` (at most one CHUNK's worth), read from the input when not held yet;
   * undefined at the end of the stream. Waits while the window is full.
   */
  async at(offset: number): Promise<Buffer | undefined> {
    for (;;) {
      if (offset < this.#base) throw new ProtocolError(`stream offset ${offset} was already released`);
      if (offset < this.#read) return this.#slice(offset);
      if (this.#ended) return undefined;
      if (this.#read - this.#base >= this.#limit) {
        await new Promise<void>((resolve) => this.#waiting.push(resolve));
      } else {
        this.#filling ??= this.#fill().finally(() => {
          this.#filling = undefined;
        });
        await this.#filling;
      }
    }
  }

  #wake(): void {
    for (const wake of this.#waiting.splice(0)) wake();
  }

  #slice(offset: number): Buffer {
    let start = this.#base;
    for (const piece of this.#held) {
      if (offset < start + piece.length) {
        const from = offset - start;
        return piece.subarray(from, Math.min(piece.length, from + MAX_CHUNK_LEN));
      }
      start += piece.length;
    }
    throw new Error(`offset ${offset} is not held`);
  }

  async #fill(): Promise<void> {
    let next: IteratorResult<Buffer>;
    try {
      if (this.#handedOff) throw new Error('the input was handed to a spool');
      this.#reader ??= this.#input[Symbol.asyncIterator]();
      next = await this.#reader.next();
    } catch (err) {
      throw new InputError(`cannot read ${this.#label}: ${(err as Error).message}`);
    }
    if (next.done) {
      this.#ended = true;
      this.#hash = this.#hasher.digest();
      return;
    }
    const piece = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
    for (let at = 0; at < piece.length; at += MAX_CHUNK_LEN) {
      const part = piece.subarray(at, at + MAX_CHUNK_LEN);
      this.#hasher.update(part);
      this.#held.push(part);
      this.#read += part.length;
      this.#boundaries.set(this.#read, this.#hasher.digest());
    }
  }
}
