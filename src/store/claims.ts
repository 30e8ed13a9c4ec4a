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
  readonly holder: Holder | undefined;
  setHolder(holder: Holder | undefined): void;
  /** Ends the claim; safe to call again. */
  release(): void;
}

/** Whether two offers describe the same item, so that one may stand in for the other. */
export function sameItem(a: ValidOffer, b: ValidOffer): boolean {
  return a.name === b.name && a.size === b.size && a.stream === b.stream && a.directory === b.directory;
}

class Entry implements Claim {
  holder: Holder | undefined;
  /** Offers waiting for this claim to change: to be taken over, or let go. */
  #waiting: Array<() => void> = [];

  constructor(
    readonly offer: ValidOffer,
    readonly release: () => void,
  ) {}

  setHolder(holder: Holder | undefined): void {
    this.holder = holder;
    this.wake();
  }

  /** Resolves at the claim's next change. */
  changed(): Promise<void> {
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  wake(): void {
    for (const resolve of this.#waiting.splice(0)) resolve();
  }
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
      // Not until it settles: a holder that is accepted meanwhile can be taken over then.
      if (held.holder === undefined) await held.changed();
      else await held.holder.takeOver();
    }
    // No await between the check above and this set: two OFFERs can never both pass.
    const entry: Entry = new Entry(offer, () => {
      if (this.#held.get(id) === entry) this.#held.delete(id);
      entry.wake();
    });
    this.#held.set(id, entry);
    return entry;
  }
}
