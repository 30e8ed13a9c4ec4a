// The options every sending API shares (`send()`, `connect()`, the CLI's `send`), in seconds
// and user terms, and what the Sender makes of them: one place for their defaults.
import { DEFAULTS } from '../defaults.js';
import { secretBytes } from '../secret.js';
import type { ClientTls } from '../transport.js';
import { RateLimiter } from './rate-limit.js';
import type { SenderOptions } from './sender.js';

export interface PeerOptions {
  /** Seconds of silence from the receiver before an attempt is given up and retried. */
  timeout?: number;
  /** Seconds to connect and get the receiver's hello; a peer silent that long is not ackship. */
  connectTimeout?: number;
  /** Attempts after the first, per item. */
  retries?: number;
  /** Seconds before the first retry; it doubles each time, with jitter. */
  retryDelay?: number;
  /** Seconds of failures in a row after which no retry starts. */
  retryMaxTime?: number;
  /** Payload bytes a second at most, over every connection (curl's --limit-rate). */
  limitRate?: number;
  /** A shared secret the receiver requires (§2.1); never sent, only proved. */
  secret?: string | Uint8Array;
  /** Connect over TLS, trusting `ca`, the pinned `fingerprint`, or (with {}) the system's CAs. */
  tls?: ClientTls;
}

/** What a Sender needs of `options`, with the defaults filled in; one rate limiter for all its lanes. */
export function senderTuning(
  options: PeerOptions,
): Pick<SenderOptions, 'timeoutMs' | 'connectTimeoutMs' | 'retry' | 'trust' | 'limiter'> {
  return {
    timeoutMs: (options.timeout ?? DEFAULTS.timeoutSeconds) * 1000,
    connectTimeoutMs: (options.connectTimeout ?? DEFAULTS.connectTimeoutSeconds) * 1000,
    retry: {
      retries: options.retries ?? DEFAULTS.retries,
      maxTimeMs: (options.retryMaxTime ?? DEFAULTS.retryMaxTimeSeconds) * 1000,
      baseDelayMs: (options.retryDelay ?? DEFAULTS.retryDelaySeconds) * 1000,
      maxDelayMs: DEFAULTS.maxRetryDelaySeconds * 1000,
    },
    trust: {
      ...(options.secret !== undefined && { secret: secretBytes(options.secret) }),
      ...(options.tls !== undefined && { tls: options.tls }),
    },
    ...(options.limitRate !== undefined && { limiter: new RateLimiter(options.limitRate) }),
  };
}
