// §6.3: the declared sizes of a connection's open eager items, counted alike by both ends, from
// an item's OFFER until its answer: the sender keeps within MAX_EAGER_OPEN_BYTES, the receiver
// holds it to that, since it keeps each eager item's data in memory until the item is decided.
import { MAX_EAGER_OPEN_BYTES } from './constants.js';

export class OpenEagerBytes {
  readonly #sizes = new Map<number, number>();
  #total = 0;

  /** Whether an eager item of `size` bytes more stays within the bound. */
  fits(size: number): boolean {
    return this.#total + size <= MAX_EAGER_OPEN_BYTES;
  }

  has(slot: number): boolean {
    return this.#sizes.has(slot);
  }

  add(slot: number, size: number): void {
    this.#sizes.set(slot, size);
    this.#total += size;
  }

  /** The item in `slot` is settled: its bytes no longer count (nothing, if it was not eager). */
  remove(slot: number): void {
    this.#total -= this.#sizes.get(slot) ?? 0;
    this.#sizes.delete(slot);
  }

  clear(): void {
    this.#sizes.clear();
    this.#total = 0;
  }
}
