// One `ackship send` run: every source delivered over one session (by default one connection,
// many items in flight), each outcome reported as it is known, and the run's verdict and
// summary derived from all of them.
import { randomBytes } from 'node:crypto';
import {
  AbortedError,
  AckshipError,
  InputError,
  InterruptedError,
  PartialError,
  RejectedError,
} from '../errors.js';
import { MAX_VERSION, maxOpenItems, TRANSFER_ID_LEN } from '../protocol/constants.js';
import {
  type Delivery,
  type QueryVerdict,
  Sender,
  type SenderOptions,
  type TransferEvents,
} from './sender.js';
import type { Source } from './sources.js';
import { TransferIds } from './transfer-ids.js';

export type ItemOutcome =
  | { status: 'confirmed'; source: Source; delivery: Delivery; seconds: number }
  | { status: 'failed'; source: Source; error: AckshipError; seconds: number }
  /** The run stopped (Ctrl-C, a lost receiver) before this item was tried. */
  | { status: 'not-started'; source: Source; seconds: 0 }
  /** --dry-run: what the receiver said it would do with the item; nothing was sent. */
  | { status: 'checked'; source: Source; verdict: QueryVerdict; seconds: number };

export interface JobReporter extends TransferEvents {
  finished(outcome: ItemOutcome): void;
}

export interface SendJobOptions extends Omit<SenderOptions, 'session'> {
  stateDir: string;
  /** Connections to spread the items over. */
  connections: number;
  /** Only ask the receiver what it would do with each item (PROTOCOL.md §4.1); send nothing, keep no ids. */
  dryRun?: boolean;
}

export interface JobSummary {
  items: number;
  /** confirmed + failed + notStarted = items. */
  confirmed: number;
  failed: number;
  notStarted: number;
  /** Bytes of the confirmed items. */
  bytes: number;
  seconds: number;
  connections: number;
  retries: number;
  /** --dry-run: how the items were found, by verdict; `confirmed` is then 0. */
  dryRun?: DryRunCounts;
}

export interface DryRunCounts {
  wouldSend: number;
  alreadyThere: number;
  /** A file of the size with other bytes is under the name: refused unless the receiver overwrites. */
  differs: number;
  wouldRefuse: number;
}

/** Failures that concern one item only; anything else (the receiver is gone, Ctrl-C) ends the run. */
function concernsOneItem(err: unknown): boolean {
  return err instanceof RejectedError || err instanceof InputError;
}

function asAckshipError(err: unknown): AckshipError {
  if (err instanceof AckshipError) return err;
  return new AckshipError(err instanceof Error ? err.message : String(err));
}

/**
 * Most items one worker pool keeps in flight per connection: the widest window of the protocol
 * (§6: 256 from v5). A receiver with a narrower one makes the extra workers wait for a slot.
 */
const ITEMS_PER_CONNECTION = maxOpenItems(MAX_VERSION);

/** A run's senders, one per connection, in one session (§4.8). */
export function runLanes(options: SendJobOptions): Sender[] {
  const session = randomBytes(TRANSFER_ID_LEN);
  return Array.from({ length: options.connections }, () => new Sender({ ...options, session }));
}

/** Delivers `sources` over `lanes` (made by runLanes(options)), and closes them. */
export async function sendJob(
  sources: Source[],
  options: SendJobOptions,
  reporter: JobReporter,
  lanes: Sender[],
): Promise<{ outcomes: ItemOutcome[]; summary: JobSummary }> {
  const started = performance.now();
  // One key string per source, made once: the ids' map and their settled set then share it.
  const keys = sources.map((s) => s.identity && JSON.stringify([s.identity, s.name]));
  const ids = await TransferIds.assign(
    options.stateDir,
    keys.filter((key): key is string => key !== undefined),
    options.dryRun === true,
  );
  const outcomes: ItemOutcome[] = [];
  let retries = 0;
  let next = 0;
  let stopped = false;
  const events: JobReporter = {
    ...reporter,
    retry(source, attempt, error, delayMs) {
      retries++;
      reporter.retry?.(source, attempt, error, delayMs);
    },
  };

  async function work(lane: Sender): Promise<void> {
    while (!stopped && next < sources.length) {
      const key = keys[next];
      const source = sources[next++] as Source;
      const id = key ? ids.idFor(key) : randomBytes(TRANSFER_ID_LEN);
      const itemStarted = performance.now();
      let outcome: ItemOutcome;
      try {
        if (options.dryRun) {
          const verdict = await lane.query(source, id, events);
          outcome = { status: 'checked', source, verdict, seconds: (performance.now() - itemStarted) / 1000 };
          outcomes.push(outcome);
          reporter.finished(outcome);
          continue;
        }
        const delivery = await lane.deliver(source, id, events);
        outcome = {
          status: 'confirmed',
          source,
          delivery,
          seconds: (performance.now() - itemStarted) / 1000,
        };
        if (key) ids.settled(key);
      } catch (err) {
        const error = asAckshipError(err);
        outcome = { status: 'failed', source, error, seconds: (performance.now() - itemStarted) / 1000 };
        if (key && err instanceof RejectedError) ids.settled(key);
        if (!concernsOneItem(error)) stopped = true;
      }
      outcomes.push(outcome);
      reporter.finished(outcome);
    }
  }

  try {
    // Workers take turns by lane, so that the first items spread over every connection.
    await Promise.all(
      Array.from({ length: ITEMS_PER_CONNECTION }, () => lanes.map((lane) => work(lane))).flat(),
    );
  } finally {
    for (const lane of lanes) lane.close();
    await ids.close();
  }
  // Every item is reported, also those the run never reached.
  for (const source of sources.slice(next)) {
    const outcome: ItemOutcome = { status: 'not-started', source, seconds: 0 };
    outcomes.push(outcome);
    reporter.finished(outcome);
  }
  const confirmed = outcomes.filter((o) => o.status === 'confirmed');
  const failed = outcomes.filter((o) => o.status === 'failed');
  const checked = outcomes.filter((o) => o.status === 'checked').length;
  return {
    outcomes,
    summary: {
      items: sources.length,
      confirmed: confirmed.length,
      failed: failed.length,
      notStarted: outcomes.length - confirmed.length - failed.length - checked,
      bytes: confirmed.reduce((sum, o) => sum + o.delivery.size, 0),
      seconds: (performance.now() - started) / 1000,
      connections: lanes.reduce((sum, lane) => sum + lane.connectionsOpened, 0),
      retries,
      ...(options.dryRun && { dryRun: countVerdicts(outcomes) }),
    },
  };
}

function countVerdicts(outcomes: ItemOutcome[]): DryRunCounts {
  const counts: DryRunCounts = { wouldSend: 0, alreadyThere: 0, differs: 0, wouldRefuse: 0 };
  const field = {
    'would-send': 'wouldSend',
    'already-there': 'alreadyThere',
    differs: 'differs',
    'would-refuse': 'wouldRefuse',
  } as const;
  for (const o of outcomes) if (o.status === 'checked') counts[field[o.verdict.type]]++;
  return counts;
}

/**
 * The run's error: none when all were confirmed; the signal's when it was interrupted, however
 * many got through (Ctrl-C is 130 for one item or a thousand); the item's own when none was
 * confirmed; else partial.
 */
export function jobError(sources: Source[], outcomes: ItemOutcome[]): AckshipError | undefined {
  // A dry run that got every answer: refused ones make it 65, as a real run would be.
  const checked = outcomes.filter((o) => o.status === 'checked');
  if (checked.length === sources.length && sources.length > 0) {
    const refused = checked.filter((o) => o.verdict.type === 'would-refuse').length;
    if (refused === 0) return undefined;
    return new RejectedError(`${refused} of ${sources.length} items would be refused`, 0);
  }
  const confirmed = outcomes.filter((o) => o.status === 'confirmed').length;
  if (confirmed === sources.length) return undefined;
  const failures = outcomes.flatMap((o) => (o.status === 'failed' ? [o.error] : []));
  const interrupted = failures.find((e) => e instanceof InterruptedError || e instanceof AbortedError);
  if (interrupted !== undefined) return interrupted;
  const firstFailure = outcomes.find((o) => o.status === 'failed');
  if (confirmed === 0 && firstFailure?.status === 'failed') return firstFailure.error;
  return new PartialError(`${confirmed} of ${sources.length} items confirmed`);
}
