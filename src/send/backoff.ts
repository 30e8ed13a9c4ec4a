// When to try again: exponential backoff with jitter, so that many senders that lost the same
// receiver do not all come back in the same millisecond.
import { setTimeout as delay } from 'node:timers/promises';

export interface RetryPolicy {
  /** Attempts after the first. */
  retries: number;
  /** No retry starts once failures in a row have lasted this long (curl's --retry-max-time). */
  maxTimeMs: number;
  /** The first delay; each later one doubles, up to `maxDelayMs`. */
  baseDelayMs: number;
  maxDelayMs: number;
}

/** The wait before retry `n` (1-based): between half and all of the capped exponential delay. */
export function retryDelay(
  policy: Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs'>,
  n: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (n - 1));
  return ceiling / 2 + (random() * ceiling) / 2;
}

/** Sleeps `ms`; an abort rejects with the signal's reason. */
export async function sleep(ms: number, signal: AbortSignal): Promise<void> {
  try {
    await delay(ms, undefined, { signal });
  } catch (err) {
    throw signal.aborted ? signal.reason : err;
  }
}
