// v6 (PROTOCOL.md §6.3): whether a run's small files go with their OFFER. Sent eagerly, a
// file's verdict comes one round trip after its OFFER instead of two; but a file the receiver
// holds already has its bytes sent in vain, where asking first would have sent none. So the
// run's first small file asks, and the others wait for its answer. There already: this is a
// re-run, and every file asks, so that nothing already there is sent again. Not there: files
// go eagerly, until one turns out to have been there (a tree half sent before), and from then
// on they ask: at most the files already in flight were sent in vain.

export type SmallFileWay = 'eager' | 'ask' | 'probe';

export class EagerPolicy {
  /** Settles with the probe's answer. */
  #probe: Promise<void> | undefined;
  #probed: () => void = () => {};
  /** A file of this run was there already: the probe, or one sent eagerly. */
  #held = false;

  /** How the next small file goes; the one told 'probe' asks, and must then call `probed`. */
  async next(): Promise<SmallFileWay> {
    if (this.#probe === undefined) {
      this.#probe = new Promise((resolve) => {
        this.#probed = resolve;
      });
      return 'probe';
    }
    await this.#probe;
    return this.#held ? 'ask' : 'eager';
  }

  /** The probe's first answer (or its failure): whether the receiver held that file already. */
  probed(held: boolean): void {
    if (held) this.#held = true;
    this.#probed();
  }

  /** A file sent eagerly was there already. */
  held(): void {
    this.#held = true;
  }
}
