// Per-id exclusion (PROTOCOL.md §7.1): from its OFFER until it settles, a transfer id belongs to
// one connection's item. A second OFFER of the id waits while the holder decides or commits,
// takes over a holder that is only receiving (a retry on a new connection beats its own stale
// one), and is refused when it describes another item. Without this, two connections offering
// one id at once both wrote the same part and both were confirmed.
import type { ValidOffer } from '../protocol/receiver-machine.js';

/** Can be taken over: the holder's connection is dropped and its writer let go. */
export interface Holder {
  takeOver(): Promise<void>;
}

export interface Claim {
  readonly offer: ValidOffer;
  /** Set once the item was accepted and its data is being received; unset while committing. */
  holder: Holder | undefined;
  /** Ends the claim; safe to call again. */
  release(): void;
}

interface Entry extends Claim {
  readonly released: Promise<void>;
}

/** Whether two offers describe the same item, so that one may stand in for the other. */
export function sameItem(a: ValidOffer, b: ValidOffer): boolean {
  return a.name === b.name && a.size === b.size && a.stream === b.stream && a.directory === b.directory;
}

export class Claims {
  readonly #held = new Map<string, Entry>();

  has(id: string): boolean {
    return this.#held.has(id);
  }

  /**
   * Claims `offer`'s id, waiting for or taking over an earlier claim of the same item; resolves
   * undefined when the id is held for another item.
   */
  async claim(offer: ValidOffer): Promise<Claim | undefined> {
    const id = offer.id.toString('hex');
    for (;;) {
      const held = this.#held.get(id);
      if (held === undefined) break;
      if (!sameItem(held.offer, offer)) return undefined;
      if (held.holder !== undefined) await held.holder.takeOver();
      await held.released;
    }
    // No await between the check above and this set: two OFFERs can never both pass.
    let release = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const entry: Entry = {
      offer,
      holder: undefined,
      released,
      release: () => {
        if (this.#held.get(id) === entry) this.#held.delete(id);
        release();
      },
    };
    this.#held.set(id, entry);
    return entry;
  }
}
