// A compact in-memory index of confirmed transfer ids: 16-byte id -> (journal offset, confirmed
// at), in one open-addressing table of 32-byte slots. A Map of record objects held ~460 bytes an
// id (464 MiB at 1,000,000); this holds 32 to 64 at a load of up to three quarters. Keys are hashed with a seed
// drawn at start, so ids a peer picks cannot be made to collide on purpose.
import { randomBytes } from 'node:crypto';
import { TRANSFER_ID_LEN } from '../protocol/constants.js';

const SLOT = 32;
/** Within a slot: the id, then offset + 1 (0: empty) and the time it was confirmed, as doubles. */
const OFFSET_AT = 16;
const TIME_AT = 24;

export interface IndexEntry {
  offset: number;
  atMs: number;
}

export class IdIndex {
  #table: Buffer;
  #capacity: number;
  #size = 0;
  readonly #seed = randomBytes(16);

  constructor(expected = 0) {
    this.#capacity = 1024;
    while (this.#capacity * 3 < expected * 4) this.#capacity *= 2;
    this.#table = Buffer.alloc(this.#capacity * SLOT);
  }

  get size(): number {
    return this.#size;
  }

  #hash(id: Buffer): number {
    let h = 0x811c9dc5;
    for (let i = 0; i < TRANSFER_ID_LEN; i++) {
      h = Math.imul(h ^ (id[i] as number) ^ (this.#seed[i] as number), 0x01000193);
    }
    return (h ^ (h >>> 15)) >>> 0;
  }

  /** The slot holding `id`, or the empty one where it would go. */
  #find(id: Buffer): number {
    const mask = this.#capacity - 1;
    for (let slot = this.#hash(id) & mask; ; slot = (slot + 1) & mask) {
      const at = slot * SLOT;
      if (this.#table.readDoubleLE(at + OFFSET_AT) === 0) return slot;
      if (this.#table.compare(id, 0, TRANSFER_ID_LEN, at, at + TRANSFER_ID_LEN) === 0) return slot;
    }
  }

  get(id: Buffer): IndexEntry | undefined {
    const at = this.#find(id) * SLOT;
    const offset = this.#table.readDoubleLE(at + OFFSET_AT);
    if (offset === 0) return undefined;
    return { offset: offset - 1, atMs: this.#table.readDoubleLE(at + TIME_AT) };
  }

  /** Adds `id`, or moves it to a later record of it; true when it was there already. */
  set(id: Buffer, offset: number, atMs: number): boolean {
    let at = this.#find(id) * SLOT;
    const known = this.#table.readDoubleLE(at + OFFSET_AT) !== 0;
    if (!known) {
      if ((this.#size + 1) * 4 > this.#capacity * 3) {
        this.#grow();
        at = this.#find(id) * SLOT;
      }
      this.#size++;
      id.copy(this.#table, at, 0, TRANSFER_ID_LEN);
    }
    this.#table.writeDoubleLE(offset + 1, at + OFFSET_AT);
    this.#table.writeDoubleLE(atMs, at + TIME_AT);
    return known;
  }

  /** Every entry, in table order. */
  *entries(): Generator<[Buffer, IndexEntry]> {
    for (let at = 0; at < this.#table.length; at += SLOT) {
      const offset = this.#table.readDoubleLE(at + OFFSET_AT);
      if (offset === 0) continue;
      yield [
        this.#table.subarray(at, at + TRANSFER_ID_LEN),
        { offset: offset - 1, atMs: this.#table.readDoubleLE(at + TIME_AT) },
      ];
    }
  }

  #grow(): void {
    const old = this.#table;
    this.#capacity *= 2;
    this.#table = Buffer.alloc(this.#capacity * SLOT);
    this.#size = 0;
    for (let at = 0; at < old.length; at += SLOT) {
      const offset = old.readDoubleLE(at + OFFSET_AT);
      if (offset !== 0)
        this.set(old.subarray(at, at + TRANSFER_ID_LEN), offset - 1, old.readDoubleLE(at + TIME_AT));
    }
  }
}
