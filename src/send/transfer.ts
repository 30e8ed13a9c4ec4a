// One transfer, as both the library's send() and the send command run it: items resolved and
// checked, delivered, and the outcome of each reported as it is known.
import { DEFAULTS } from '../defaults.js';
import type { AckshipError } from '../errors.js';
import { loadHasher } from '../hash.js';
import { parseAddress } from '../net-address.js';
import { type PeerOptions, senderTuning } from './peer-options.js';
import { type JobReporter, type JobSummary, runLanes, sendJob } from './send-job.js';
import { resolveSources, type SendItem, type Source } from './sources.js';
import { defaultStateDir } from './transfer-ids.js';
import { type FilterRule, treeFilter } from './tree-filter.js';

export interface TransferOptions extends PeerOptions {
  /** Ask the receiver what it would do with each item, and send nothing (needs a v4 receiver). */
  dryRun?: boolean;
  connections?: number;
  /** Where unconfirmed transfer ids are kept so that a later run resumes. */
  stateDir?: string;
  /** Send directories and what they hold. */
  recursive?: boolean;
  /** Refuse symlinks and special files in a tree instead of skipping them. */
  noSkip?: boolean;
  /** Which entries of a tree to send: rsync-like --include/--exclude rules, first match wins. */
  filter?: FilterRule[];
  /** Spool streams to a private file before sending (all or nothing) instead of streaming them. */
  spool?: boolean;
  /** Most bytes of a stream held in memory until the receiver acknowledges them as durable. */
  window?: number;
  /** Whose reason is the error to raise. */
  signal: AbortSignal;
}

export interface TransferEvents extends Partial<JobReporter> {
  /** Every item is resolved and checked; nothing has been sent yet. */
  resolved?(sources: Source[]): void;
  /** A symlink or special file in a tree was skipped; `what` says which. */
  skipped?(path: string, what: string): void;
}

export interface TransferResult {
  sources: Source[];
  summary: JobSummary;
  /** Undefined when every item was confirmed. */
  error?: AckshipError;
}

export async function transfer(
  target: string,
  items: SendItem[],
  options: TransferOptions,
  events: TransferEvents = {},
): Promise<TransferResult> {
  const address = parseAddress(target);
  const { signal } = options;
  await loadHasher();
  const jobOptions = {
    address,
    connections: options.connections ?? DEFAULTS.connections,
    ...(options.dryRun && { dryRun: true }),
    ...senderTuning(options),
    signal,
    stateDir: options.stateDir ?? defaultStateDir(process.env),
  };
  // The connections open while the sources are found: a tree's scan and a handshake's round
  // trips overlap.
  const lanes = runLanes(jobOptions);
  for (const lane of lanes) lane.connectAhead();
  const resolved = await resolveSources(items, {
    recursive: options.recursive ?? false,
    noSkip: options.noSkip ?? false,
    spool: options.spool ?? false,
    window: options.window ?? DEFAULTS.windowBytes,
    skipped: (path, what) => events.skipped?.(path, what),
    ...(options.filter !== undefined && { filter: treeFilter(options.filter) }),
    signal,
  }).catch((err: unknown) => {
    for (const lane of lanes) lane.close();
    throw err;
  });
  try {
    const { sources } = resolved;
    events.resolved?.(sources);
    const { summary, error } = await sendJob(sources, jobOptions, { finished: () => {}, ...events }, lanes);
    return { sources, summary, ...(error !== undefined && { error }) };
  } finally {
    await resolved.cleanup();
  }
}
