// One transfer, as both the library's send() and the send command run it: items resolved and
// checked, delivered, and the outcome of each reported as it is known.
import { DEFAULTS } from '../defaults.js';
import type { AckshipError } from '../errors.js';
import { loadHasher } from '../hash.js';
import { parseAddress } from '../net-address.js';
import { secretBytes } from '../secret.js';
import type { ClientTls } from '../transport.js';
import { RateLimiter } from './rate-limit.js';
import { type ItemOutcome, type JobReporter, type JobSummary, jobError, sendJob } from './send-job.js';
import { resolveSources, type SendItem, type Source } from './sources.js';
import { defaultStateDir } from './transfer-ids.js';
import { type FilterRule, treeFilter } from './tree-filter.js';

export interface TransferOptions {
  /** Seconds of silence from the receiver before an attempt is given up and retried. */
  timeout?: number;
  retries?: number;
  /** Seconds before the first retry; it doubles each time, with jitter. */
  retryDelay?: number;
  /** Seconds to connect and get the receiver's hello; a peer silent that long is not ackship. */
  connectTimeout?: number;
  /** Seconds of failures in a row after which no retry starts. */
  retryMaxTime?: number;
  /** Payload bytes a second at most, over every connection of the transfer (curl's --limit-rate). */
  limitRate?: number;
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
  /** A shared secret the receiver requires (§2.1); never sent, only proved. */
  secret?: string | Uint8Array;
  /** Connect over TLS, trusting `ca`, the pinned `fingerprint`, or (with {}) the system's CAs. */
  tls?: ClientTls;
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
  outcomes: ItemOutcome[];
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
  const resolved = await resolveSources(items, {
    recursive: options.recursive ?? false,
    noSkip: options.noSkip ?? false,
    spool: options.spool ?? false,
    window: options.window ?? DEFAULTS.windowBytes,
    skipped: (path, what) => events.skipped?.(path, what),
    ...(options.filter !== undefined && { filter: treeFilter(options.filter) }),
    signal,
  });
  try {
    const { sources } = resolved;
    events.resolved?.(sources);
    const { outcomes, summary } = await sendJob(
      sources,
      {
        address,
        connections: options.connections ?? DEFAULTS.connections,
        timeoutMs: (options.timeout ?? DEFAULTS.timeoutSeconds) * 1000,
        connectTimeoutMs: (options.connectTimeout ?? DEFAULTS.connectTimeoutSeconds) * 1000,
        retry: {
          retries: options.retries ?? DEFAULTS.retries,
          maxTimeMs: (options.retryMaxTime ?? DEFAULTS.retryMaxTimeSeconds) * 1000,
          baseDelayMs: (options.retryDelay ?? DEFAULTS.retryDelaySeconds) * 1000,
          maxDelayMs: DEFAULTS.maxRetryDelaySeconds * 1000,
        },
        signal,
        ...(options.limitRate !== undefined && { limiter: new RateLimiter(options.limitRate) }),
        stateDir: options.stateDir ?? defaultStateDir(process.env),
        trust: {
          ...(options.secret !== undefined && { secret: secretBytes(options.secret) }),
          ...(options.tls !== undefined && { tls: options.tls }),
        },
      },
      { finished: () => {}, ...events },
    );
    const error = jobError(sources, outcomes);
    return { sources, outcomes, summary, ...(error !== undefined && { error }) };
  } finally {
    await resolved.cleanup();
  }
}
