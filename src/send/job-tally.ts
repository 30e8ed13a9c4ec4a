// A run's verdict and counts, kept as its items finish rather than derived at the end from every
// outcome: a run holds none of its outcomes, so a tree of a million files does not keep a
// million outcome objects alive until its summary (with the ids in one buffer, transfer-ids.ts,
// the sender's live heap went from 0.8 to 0.37 KiB a file over 100,000 files).
import { AbortedError, type AckshipError, InterruptedError, PartialError, RejectedError } from '../errors.js';
import type { Delivery, QueryVerdict } from './sender.js';
import type { Source } from './sources.js';

export type ItemOutcome =
  | { status: 'confirmed'; source: Source; delivery: Delivery; seconds: number }
  | { status: 'failed'; source: Source; error: AckshipError; seconds: number }
  /** The run stopped (Ctrl-C, a lost receiver) before this item was tried. */
  | { status: 'not-started'; source: Source; seconds: 0 }
  /** --dry-run: what the receiver said it would do with the item; nothing was sent. */
  | { status: 'checked'; source: Source; verdict: QueryVerdict; seconds: number };

export interface DryRunCounts {
  wouldSend: number;
  alreadyThere: number;
  /** A file of the size with other bytes is under the name: refused unless the receiver overwrites. */
  differs: number;
  wouldRefuse: number;
}

const VERDICT_FIELD = {
  'would-send': 'wouldSend',
  'already-there': 'alreadyThere',
  differs: 'differs',
  'would-refuse': 'wouldRefuse',
} as const;

export class JobTally {
  confirmed = 0;
  failed = 0;
  notStarted = 0;
  checked = 0;
  /** Bytes of the confirmed items. */
  bytes = 0;
  readonly verdicts: DryRunCounts = { wouldSend: 0, alreadyThere: 0, differs: 0, wouldRefuse: 0 };
  #firstFailure: AckshipError | undefined;
  #interrupted: AckshipError | undefined;

  add(outcome: ItemOutcome): void {
    switch (outcome.status) {
      case 'confirmed':
        this.confirmed++;
        this.bytes += outcome.delivery.size;
        return;
      case 'failed': {
        this.failed++;
        const { error } = outcome;
        this.#firstFailure ??= error;
        if (error instanceof InterruptedError || error instanceof AbortedError) this.#interrupted ??= error;
        return;
      }
      case 'not-started':
        this.notStarted++;
        return;
      case 'checked':
        this.checked++;
        this.verdicts[VERDICT_FIELD[outcome.verdict.type]]++;
    }
  }

  /**
   * The run's error once all `items` are counted: none when all were confirmed; the signal's when
   * it was interrupted, however many got through (Ctrl-C is 130 for one item or a thousand); the
   * first failure's own when none was confirmed; else partial.
   */
  error(items: number): AckshipError | undefined {
    // A dry run that got every answer: refused ones make it 65, as a real run would be.
    if (this.checked === items && items > 0) {
      const refused = this.verdicts.wouldRefuse;
      if (refused === 0) return undefined;
      return new RejectedError(`${refused} of ${items} items would be refused`, 0);
    }
    if (this.confirmed === items) return undefined;
    if (this.#interrupted !== undefined) return this.#interrupted;
    if (this.confirmed === 0 && this.#firstFailure !== undefined) return this.#firstFailure;
    return new PartialError(`${this.confirmed} of ${items} items confirmed`);
  }
}
