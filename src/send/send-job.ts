// One `ackship send` run: every source delivered over one session (by default one connection,
// many items in flight), each outcome reported as it is known, and the run's verdict and
// summary tallied as they come (job-tally.ts).
import { randomBytes } from 'node:crypto';
import { AckshipError, InputError, RejectedError } from '../errors.js';
import { MAX_VERSION, maxOpenItems, TRANSFER_ID_LEN } from '../protocol/constants.js';
import { type DryRunCounts, type ItemOutcome, JobTally } from './job-tally.js';
import { Sender, type SenderOptions, type TransferEvents } from './sender.js';
import type { Source } from './sources.js';
import { TransferIds } from './transfer-ids.js';

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

/**
 * Delivers `sources` over `lanes` (made by runLanes(options)), and closes them. Each outcome goes
 * to the reporter as it is known and is not kept: the summary and the error are tallied.
 */
export async function sendJob(
  sources: Source[],
  options: SendJobOptions,
  reporter: JobReporter,
  lanes: Sender[],
): Promise<{ summary: JobSummary; error: AckshipError | undefined }> {
  const started = performance.now();
  const ids = await TransferIds.assign(
    options.stateDir,
    sources.map((s) => s.key),
    options.dryRun === true,
  );
  const tally = new JobTally();
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
  const finished = (outcome: ItemOutcome) => {
    tally.add(outcome);
    reporter.finished(outcome);
  };

  async function work(lane: Sender): Promise<void> {
    while (!stopped && next < sources.length) {
      const at = next++;
      const source = sources[at] as Source;
      const id = ids.idAt(at);
      const itemStarted = performance.now();
      const seconds = () => (performance.now() - itemStarted) / 1000;
      try {
        if (options.dryRun) {
          const verdict = await lane.query(source, id, events);
          finished({ status: 'checked', source, verdict, seconds: seconds() });
          continue;
        }
        const delivery = await lane.deliver(source, id, events);
        ids.settle(at);
        finished({ status: 'confirmed', source, delivery, seconds: seconds() });
      } catch (err) {
        const error = asAckshipError(err);
        if (err instanceof RejectedError) ids.settle(at);
        if (!concernsOneItem(error)) stopped = true;
        finished({ status: 'failed', source, error, seconds: seconds() });
      }
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
  for (let at = next; at < sources.length; at++)
    finished({ status: 'not-started', source: sources[at] as Source, seconds: 0 });
  const summary: JobSummary = {
    items: sources.length,
    confirmed: tally.confirmed,
    failed: tally.failed,
    notStarted: tally.notStarted,
    bytes: tally.bytes,
    seconds: (performance.now() - started) / 1000,
    connections: lanes.reduce((sum, lane) => sum + lane.connectionsOpened, 0),
    retries,
    ...(options.dryRun && { dryRun: tally.verdicts }),
  };
  return { summary, error: tally.error(sources.length) };
}
