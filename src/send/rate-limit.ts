// --limit-rate: the run's payload bytes, over all its connections, at most `rate` a second on
// average. A token bucket: a write waits until the bucket has refilled enough to cover it (a
// chunk is never split; the bucket goes into debt by it and the wait pays the debt). The
// bucket is pure (time in, wait out); the limiter around it sleeps.
import { sleep } from './backoff.js';

export class TokenBucket {
  readonly #rate: number;
  readonly #burst: number;
  #tokens: number;
  #at: number;

  /** `rate` bytes a second; up to `burst` bytes may go at once after a pause. */
  constructor(rate: number, burst: number, nowMs: number) {
    this.#rate = rate;
    this.#burst = burst;
    this.#tokens = burst;
    this.#at = nowMs;
  }

  /** Takes `bytes` at `nowMs`; the milliseconds to wait before writing them. */
  take(bytes: number, nowMs: number): number {
    this.#tokens = Math.min(this.#burst, this.#tokens + ((nowMs - this.#at) * this.#rate) / 1000);
    this.#at = nowMs;
    this.#tokens -= bytes;
    return this.#tokens >= 0 ? 0 : (-this.#tokens * 1000) / this.#rate;
  }
}

export class RateLimiter {
  readonly #bucket: TokenBucket;

  constructor(bytesPerSecond: number) {
    // A tenth of a second's worth: short bursts, an even rate.
    this.#bucket = new TokenBucket(bytesPerSecond, bytesPerSecond / 10, performance.now());
  }

  async take(bytes: number, signal: AbortSignal): Promise<void> {
    const wait = this.#bucket.take(bytes, performance.now());
    if (wait > 0) await sleep(wait, signal);
  }
}
