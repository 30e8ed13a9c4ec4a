// A compact in-memory index of confirmed transfer ids: id -> (journal offset, confirmed at), in
// one open-addressing table of 24 bytes a slot, sized at start for the journal at hand and grown
// by half when it fills. A Map of record objects held ~460 bytes an id (464 MiB at 1,000,000);
// this holds about 33.
//
// A slot keeps a 96-bit key of an id's 128 bits (the last word folded into the first): two ids
// with one key share a slot, and the later one wins. That can only lose a dedup answer, never give a wrong one, because a record is read
// back from the journal and its whole id compared before it is believed (ConfirmedJournal.get);
// for random ids it does not happen (1e-14 at 30 million ids).
//
// Slots are found with a multiply-add hash whose multipliers are drawn at start, so ids a peer
// picks cannot be made to pile up in one probe run on purpose.
import { randomBytes } from 'node:crypto';

/** Words of the key an id is indexed by: its four little-endian u32s, the last XORed into the first. */
export const KEY_WORDS = 3;
/**
 * Words of a slot: the key, the offset's low 32 bits and high 16 (journals up to 256 TiB), the
 * time confirmed (s; 0: empty slot). One slot is one cache line's part: a probe is one miss.
 */
const STRIDE = KEY_WORDS + 3;
const OFFSET_LOW = KEY_WORDS;
const OFFSET_HIGH = KEY_WORDS + 1;
const TIME = KEY_WORDS + 2;
const TWO_32 = 2 ** 32;
/** Slots kept free: probe runs stay short (13 for a miss at worst, in adjacent cache lines). */
const MAX_LOAD = 0.8;

export interface IndexEntry {
  offset: number;
  atMs: number;
}

/** A reusable key: fill it with `keyFromHex` or word by word. */
export function newKey(): Uint32Array {
  return new Uint32Array(KEY_WORDS);
}

/** The key of a transfer id given as 32 hex digits. */
export function keyFromHex(hex: string, key = newKey()): Uint32Array {
  const bytes = Buffer.from(hex, 'hex');
  for (let w = 0; w < KEY_WORDS; w++) key[w] = bytes.readUInt32LE(4 * w);
  key[0] = (key[0] as number) ^ bytes.readUInt32LE(4 * KEY_WORDS);
  return key;
}

/** An index's whole state, as a snapshot holds it (index-snapshot.ts). */
export interface IndexTable {
  /** KEY_WORDS + 1 words. */
  multipliers: Uint32Array;
  size: number;
  /** `slotWords(capacity)` words. */
  slots: Uint32Array;
}

export const MULTIPLIER_WORDS = KEY_WORDS + 1;

export function slotWords(capacity: number): number {
  return capacity * STRIDE;
}

export class IdIndex {
  #capacity: number;
  #slots: Uint32Array;
  readonly #multipliers: Uint32Array;
  #size: number;

  /** An index with room for `expected` ids before it grows, or the one `table` holds. */
  constructor(expected: number, table?: IndexTable) {
    this.#capacity = table ? table.slots.length / STRIDE : Math.max(64, Math.ceil(expected / MAX_LOAD) + 1);
    this.#slots = table?.slots ?? new Uint32Array(slotWords(this.#capacity));
    this.#multipliers = table?.multipliers ?? new Uint32Array(randomBytes(4 * MULTIPLIER_WORDS).buffer);
    this.#size = table?.size ?? 0;
  }

  get size(): number {
    return this.#size;
  }

  get table(): IndexTable {
    return { multipliers: this.#multipliers, size: this.#size, slots: this.#slots };
  }

  /** How many ids were confirmed at `oldestMs` or later. */
  countSince(oldestMs: number): number {
    const oldest = Math.ceil(oldestMs / 1000);
    let count = 0;
    for (let at = TIME; at < this.#slots.length; at += STRIDE)
      if ((this.#slots[at] as number) >= oldest) count++;
    return count;
  }

  /** The slot holding `key`, or the empty one where it would go. */
  #find(key: Uint32Array): number {
    const m = this.#multipliers;
    let h = m[KEY_WORDS] as number;
    for (let w = 0; w < KEY_WORDS; w++) h = (h + Math.imul(key[w] as number, (m[w] as number) | 1)) | 0;
    // The hash's high bits pick the slot: they are the well-mixed ones of a multiply.
    let slot = Math.floor(((h >>> 0) * this.#capacity) / TWO_32);
    const s = this.#slots;
    for (;;) {
      const at = slot * STRIDE;
      if (s[at + TIME] === 0) return slot;
      if (s[at] === key[0] && s[at + 1] === key[1] && s[at + 2] === key[2]) return slot;
      slot = slot + 1 === this.#capacity ? 0 : slot + 1;
    }
  }

  get(key: Uint32Array): IndexEntry | undefined {
    const at = this.#find(key) * STRIDE;
    const s = this.#slots;
    const seconds = s[at + TIME] as number;
    if (seconds === 0) return undefined;
    return {
      offset: (s[at + OFFSET_HIGH] as number) * TWO_32 + (s[at + OFFSET_LOW] as number),
      atMs: seconds * 1000,
    };
  }

  /**
   * Adds `key`, or moves it to a later record of it; true when it was there already. The time
   * is kept in whole seconds, rounded up: an id is kept at most a second past its window.
   */
  set(key: Uint32Array, offset: number, atMs: number): boolean {
    const at = this.#find(key) * STRIDE;
    const s = this.#slots;
    const known = s[at + TIME] !== 0;
    if (!known && this.#size + 1 > this.#capacity * MAX_LOAD) {
      this.#grow();
      return this.set(key, offset, atMs);
    }
    if (!known) {
      this.#size++;
      for (let w = 0; w < KEY_WORDS; w++) s[at + w] = key[w] as number;
    }
    s[at + OFFSET_LOW] = offset >>> 0;
    s[at + OFFSET_HIGH] = Math.floor(offset / TWO_32);
    s[at + TIME] = Math.max(1, Math.ceil(atMs / 1000));
    return known;
  }

  #grow(): void {
    const old = this.#slots;
    this.#capacity = Math.ceil(this.#capacity * 1.5);
    this.#slots = new Uint32Array(this.#capacity * STRIDE);
    for (let at = 0; at < old.length; at += STRIDE) {
      if (old[at + TIME] === 0) continue;
      const slot = old.subarray(at, at + STRIDE);
      this.#slots.set(slot, this.#find(slot) * STRIDE);
    }
  }
}
