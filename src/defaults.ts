// Defaults shared by the CLI flags and the library API, defined once.
import { DEFAULT_PORT } from './net-address.js';

export const DEFAULTS = {
  /** recv: where to listen. */
  listen: `127.0.0.1:${DEFAULT_PORT}`,
  /** recv: seconds a sender may stay silent before its session is ended. */
  idleTimeoutSeconds: 60,
  /** recv: seconds a hello or a frame other than DATA/CHUNK may take to arrive whole. */
  headerTimeoutSeconds: 10,
  /** recv: connections served at once. */
  maxConnections: 256,
  /** recv: items one connection may offer before it must go on over a new one. */
  maxItemsPerConnection: 1_000_000,
  /** recv: seconds a confirmed transfer id is remembered, so that its retry is confirmed again. */
  dedupWindowSeconds: 30 * 86400,
  /** recv: seconds after its last write that a partial nobody resumed is deleted. */
  partialTtlSeconds: 7 * 86400,
  /** recv: longest name accepted, in UTF-8 bytes (the protocol's own limit). */
  maxNameLength: 4096,
  /** send: seconds of silence from the receiver before an attempt is given up. */
  timeoutSeconds: 30,
  /** send: seconds to connect and get the receiver's hello. */
  connectTimeoutSeconds: 10,
  /** send: attempts after the first. */
  retries: 8,
  /** send: no retry starts once an item's failures in a row have lasted this many seconds. */
  retryMaxTimeSeconds: 60,
  /** send: the first delay between attempts, in seconds; it doubles up to maxRetryDelaySeconds. */
  retryDelaySeconds: 0.5,
  maxRetryDelaySeconds: 5,
  /** send: bytes of a stream held in memory until the receiver acknowledges them as durable. */
  windowBytes: 16 * 1024 * 1024,
  /** send: connections to spread items over. */
  connections: 1,
  /** serve({ handler }), recv --exec: handler calls running at once. */
  handlerConcurrency: 64,
  /** serve({ handler }), recv --exec: seconds one handler call may take before it counts as failed. */
  handlerTimeoutSeconds: 60,
  /** connect(): messages sent and not yet confirmed, at most. */
  maxInFlight: 256,
  /** connect(): bytes of messages sent and not yet confirmed, at most (one larger message goes alone). */
  maxInFlightBytes: 64 * 1024 * 1024,
  /** recv: how long a shutdown waits for sessions to end, in seconds. */
  graceSeconds: 5,
} as const;
