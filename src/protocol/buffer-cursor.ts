// Cursors over a frame's fixed fields, after pg-protocol's buffer-reader/buffer-writer: the
// layout is the order of the calls, never a literal offset. The writer checks every value
// against its field before it is written, and that the buffer was filled exactly, so a bad
// value (a 2-byte transfer id from a damaged state file) is refused at the encoder instead of
// shifting the fields after it, and no unfilled byte ever goes on the wire.

/** A value that does not fit its field: a bug or bad local state, never the peer's doing. */
export class EncodeError extends RangeError {
  override name = 'EncodeError';
}

const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;

function checkInteger(what: string, value: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < 0 || value > max) {
    throw new EncodeError(`${what} must be an integer from 0 to ${max}, got ${value}`);
  }
}

export class BufferWriter {
  readonly #buf: Buffer;
  #at = 0;

  constructor(length: number) {
    this.#buf = Buffer.allocUnsafe(length);
  }

  u8(what: string, value: number): this {
    checkInteger(what, value, 0xff);
    this.#at = this.#buf.writeUInt8(value, this.#at);
    return this;
  }

  u16(what: string, value: number): this {
    checkInteger(what, value, 0xffff);
    this.#at = this.#buf.writeUInt16BE(value, this.#at);
    return this;
  }

  u32(what: string, value: number): this {
    checkInteger(what, value, 0xffff_ffff);
    this.#at = this.#buf.writeUInt32BE(value, this.#at);
    return this;
  }

  /** A length or offset: a safe integer (this implementation's limit, §3). */
  length(what: string, value: number): this {
    checkInteger(what, value, Number.MAX_SAFE_INTEGER);
    this.#at = this.#buf.writeBigUInt64BE(BigInt(value), this.#at);
    return this;
  }

  /** A hash: any unsigned 64-bit value. */
  u64(what: string, value: bigint): this {
    if (typeof value !== 'bigint' || value < 0n || value > U64_MAX)
      throw new EncodeError(`${what} must be an unsigned 64-bit integer, got ${value}`);
    this.#at = this.#buf.writeBigUInt64BE(value, this.#at);
    return this;
  }

  i64(what: string, value: number): this {
    const big = Number.isInteger(value) ? BigInt(value) : undefined;
    if (big === undefined || big < I64_MIN || big > I64_MAX)
      throw new EncodeError(`${what} must be a signed 64-bit integer, got ${value}`);
    this.#at = this.#buf.writeBigInt64BE(big, this.#at);
    return this;
  }

  /** A field of exactly `length` bytes. */
  bytes(what: string, value: Uint8Array, length: number): this {
    if (value.length !== length)
      throw new EncodeError(`${what} must be ${length} bytes, got ${value.length}`);
    this.#buf.set(value, this.#at);
    this.#at += length;
    return this;
  }

  /** The buffer, once every byte of it was written. */
  finish(): Buffer {
    if (this.#at !== this.#buf.length)
      throw new EncodeError(`encoded ${this.#at} of ${this.#buf.length} bytes of a fixed part`);
    return this.#buf;
  }
}

/** Reads a body whose length the decoder already checked, field by field. */
export class BufferReader {
  readonly #buf: Buffer;
  #at = 0;

  constructor(buf: Buffer) {
    this.#buf = buf;
  }

  u8(): number {
    const value = this.#buf.readUInt8(this.#at);
    this.#at += 1;
    return value;
  }

  u16(): number {
    const value = this.#buf.readUInt16BE(this.#at);
    this.#at += 2;
    return value;
  }

  u32(): number {
    const value = this.#buf.readUInt32BE(this.#at);
    this.#at += 4;
    return value;
  }

  u64(): bigint {
    const value = this.#buf.readBigUInt64BE(this.#at);
    this.#at += 8;
    return value;
  }

  i64(): bigint {
    const value = this.#buf.readBigInt64BE(this.#at);
    this.#at += 8;
    return value;
  }

  /** Bytes not read yet. */
  get remaining(): number {
    return this.#buf.length - this.#at;
  }

  /** A view of the next `length` bytes, for a field decoded at once. */
  view(length: number): Buffer {
    const value = this.#buf.subarray(this.#at, this.#at + length);
    this.#at += length;
    return value;
  }

  /** A copy of the next `length` bytes: kept beyond the life of the socket chunk it came in. */
  copy(length: number): Buffer {
    const value = Buffer.from(this.#buf.subarray(this.#at, this.#at + length));
    this.#at += length;
    return value;
  }

  /** A view of what is left: a payload, handed on without a copy. */
  rest(): Buffer {
    const value = this.#buf.subarray(this.#at);
    this.#at = this.#buf.length;
    return value;
  }
}
