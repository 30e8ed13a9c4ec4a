// One `ackship send` run: every source delivered in turn over one session, each outcome
// reported as it is known, and the run's verdict derived from all of them.
import { randomBytes } from 'node:crypto';
import { AckshipError, InputError, PartialError, RejectedError } from '../errors.js';
import { TRANSFER_ID_LEN } from '../protocol/constants.js';
import { type Delivery, Sender, type SenderOptions, type TransferEvents } from './sender.js';
import type { Source } from './sources.js';
import { TransferIds } from './transfer-ids.js';

export type ItemOutcome =
  | { status: 'confirmed'; source: Source; delivery: Delivery; seconds: number }
  | { status: 'failed'; source: Source; error: AckshipError; seconds: number };

export interface JobReporter extends TransferEvents {
  started?(source: Source): void;
  finished(outcome: ItemOutcome): void;
}

export interface SendJobOptions extends SenderOptions {
  stateDir: string;
}

/** Failures that concern one item only; anything else (the receiver is gone, Ctrl-C) ends the run. */
function concernsOneItem(err: unknown): boolean {
  return err instanceof RejectedError || err instanceof InputError;
}

function asAckshipError(err: unknown): AckshipError {
  if (err instanceof AckshipError) return err;
  return new AckshipError(err instanceof Error ? err.message : String(err));
}

export async function sendJob(
  sources: Source[],
  options: SendJobOptions,
  reporter: JobReporter,
): Promise<ItemOutcome[]> {
  const ids = new TransferIds(options.stateDir);
  const sender = new Sender(options);
  const outcomes: ItemOutcome[] = [];
  try {
    for (const source of sources) {
      const key = source.identity && JSON.stringify([source.identity, source.name]);
      const id = key ? await ids.idFor(key) : randomBytes(TRANSFER_ID_LEN);
      const started = performance.now();
      reporter.started?.(source);
      let outcome: ItemOutcome;
      try {
        const delivery = await sender.deliver(source, id, reporter);
        outcome = { status: 'confirmed', source, delivery, seconds: (performance.now() - started) / 1000 };
        if (key) await ids.forget(key);
      } catch (err) {
        const error = asAckshipError(err);
        outcome = { status: 'failed', source, error, seconds: (performance.now() - started) / 1000 };
        if (key && err instanceof RejectedError) await ids.forget(key);
      }
      outcomes.push(outcome);
      reporter.finished(outcome);
      if (outcome.status === 'failed' && !concernsOneItem(outcome.error)) break;
    }
  } finally {
    sender.close();
  }
  return outcomes;
}

/** The run's error: none when all were confirmed, the item's own when none was, else partial. */
export function jobError(sources: Source[], outcomes: ItemOutcome[]): AckshipError | undefined {
  const confirmed = outcomes.filter((o) => o.status === 'confirmed').length;
  if (confirmed === sources.length) return undefined;
  const firstFailure = outcomes.find((o) => o.status === 'failed');
  if (confirmed === 0 && firstFailure?.status === 'failed') return firstFailure.error;
  return new PartialError(`${confirmed} of ${sources.length} items confirmed`);
}
