// The library API: `send` resolves only when every item is confirmed by the receiver, and
// `serve` runs a receiver in this process. Errors are the same typed errors, with the same
// `code` and `exitCode`, as the CLI's.
import { EventEmitter } from 'node:events';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Writable } from 'node:stream';
import { DEFAULTS } from './defaults.js';
import { AbortedError, type AckshipError, LocalIoError, UsageError } from './errors.js';
import { type DedupRecords, JournalDedup, MemoryDedup } from './handler/dedup.js';
import { type Handler, HandlerSink } from './handler/handler-sink.js';
import { hashHex, loadHasher } from './hash.js';
import { type Address, formatAddress, parseAddress } from './net-address.js';
import { Receiver, type RunTotals } from './recv/receiver.js';
import type { ItemReport, SessionReport } from './recv/session.js';
import { secretBytes } from './secret.js';
import type { JobSummary } from './send/send-job.js';
import type { SendItem } from './send/sources.js';
import { type TransferOptions, transfer } from './send/transfer.js';
import type { ItemSink } from './store/item-writer.js';
import { DirectoryPlacement } from './store/placement.js';
import { ReceiveStore } from './store/receive-store.js';
import { StdoutPlacement } from './store/stdout-placement.js';
import type { ServerTls } from './transport.js';

export { DEFAULTS } from './defaults.js';
export * from './errors.js';
export type { Handler, HandlerItem } from './handler/handler-sink.js';
export { Refusal } from './handler/refusal.js';
export type { Address } from './net-address.js';

export type { RunTotals } from './recv/receiver.js';
export type { ItemReport, SessionReport } from './recv/session.js';
export type { JobSummary } from './send/send-job.js';
export type { SendItem } from './send/sources.js';
export type { ClientTls, ServerTls } from './transport.js';

export interface SendOptions extends Omit<TransferOptions, 'signal' | 'dryRun'> {
  /** Cancels the transfer; partials stay on the receiver for the next call to resume. */
  signal?: AbortSignal;
  /** `bytes` more of item `name` are on their way (not yet confirmed). */
  onProgress?: (name: string, bytes: number) => void;
  /** An item is settled: confirmed, or failed with `error`. */
  onItem?: (name: string, error?: AckshipError) => void;
}

export interface ConfirmedItem {
  name: string;
  bytes: number;
  /** xxHash64 of the item, as 16 hex digits, as the receiver confirmed it. */
  hash: string;
  attempts: number;
  seconds: number;
  /** Payload bytes put on the wire over all attempts. */
  bytesSent: number;
  /** Where the last attempt started: the receiver's durable offset after an interruption. */
  resumedFrom: number;
}

export interface SendResult {
  items: ConfirmedItem[];
  summary: JobSummary;
}

/** A signal whose reason is an AbortedError, following the caller's. */
function ownSignal(signal: AbortSignal | undefined): AbortSignal {
  const controller = new AbortController();
  const abort = () => controller.abort(new AbortedError('the transfer was aborted'));
  if (signal?.aborted) abort();
  signal?.addEventListener('abort', abort, { once: true });
  return controller.signal;
}

/**
 * Sends `items` to the receiver at `target` (HOST[:PORT]). Resolves once every item is
 * confirmed: checked, durable, under its name. Rejects with the item's typed error when none
 * was, or with a PartialError when some were.
 */
export async function send(
  target: string,
  items: SendItem[],
  options: SendOptions = {},
): Promise<SendResult> {
  const { onProgress, onItem, signal, ...rest } = options;
  // The library's result lists every confirmed item, so it keeps them; the CLI keeps none.
  const confirmed: ConfirmedItem[] = [];
  const result = await transfer(
    target,
    items,
    { ...rest, signal: ownSignal(signal) },
    {
      progress: (source, bytes) => onProgress?.(source.name, bytes),
      finished: (o) => {
        if (o.status === 'confirmed') {
          const { size, hash, attempts, bytesSent, resumedFrom } = o.delivery;
          confirmed.push({
            name: o.source.name,
            bytes: size,
            hash: hashHex(hash),
            attempts,
            seconds: o.seconds,
            bytesSent,
            resumedFrom,
          });
        }
        if (o.status !== 'not-started') onItem?.(o.source.name, o.status === 'failed' ? o.error : undefined);
      },
    },
  );
  if (result.error !== undefined) throw result.error;
  return { items: confirmed, summary: result.summary };
}

/** A receiver that stores items: in a directory, or on a stream. */
export interface OutOptions {
  /**
   * The directory items are stored in (created if missing), or a stream that gets one item: a
   * file once it is verified whole (its partial is kept in a private temp dir meanwhile); a v3
   * stream chunk by chunk, each written only after its checksum passed, exactly once.
   */
  out: string | Writable;
  /** With a stream `out`: write a stream item out only once it is whole, like a file. */
  spool?: boolean;
  /** Replace existing files; without it an existing name is rejected. */
  overwrite?: boolean;
}

/** A receiver that hands every item to the application, and confirms it when the handler resolved. */
export interface HandlerOptions {
  /**
   * Called once per new item (`bytes()` or `stream()` give its checked payload). Its sender's
   * ack waits until it resolves; a resolved Uint8Array or string is the ack's `reply`. Throw a
   * `Refusal` to refuse the item with a reason; anything else thrown fails it, and the sender retries.
   */
  handler: Handler;
  /**
   * Where the dedup records go (created if missing; one receiver at a time): with it, a retry of
   * an id the handler took is answered from disk after any restart or power cut. Without it,
   * records last as long as the process.
   */
  stateDir?: string;
  /** Handler calls at once (default 64); more items wait, and their senders with them. */
  maxInFlight?: number;
  /** Seconds one call may take (default 60); past it the item fails, and its sender retries. */
  handlerTimeout?: number;
}

export type ServeOptions = ServerOptions & (OutOptions | HandlerOptions);

export interface ServerOptions {
  /** HOST:PORT to listen on; port 0 picks a free one. */
  listen?: string;
  /** Largest item accepted, in bytes. */
  maxSize?: number;
  /** Seconds a sender may stay silent before its session is ended. */
  idleTimeout?: number;
  /** Seconds a hello or a frame other than DATA/CHUNK may take to arrive whole. */
  headerTimeout?: number;
  /** Connections served at once; more are told to retry later. */
  maxConnections?: number;
  /** Connections the kernel may queue before they are accepted (listen(2)'s backlog; Node's default 511). */
  backlog?: number;
  /** Items one connection may offer; past it the sender is told to go on over a new connection. */
  maxItems?: number;
  /** Longest name accepted, in UTF-8 bytes (at most 4096). */
  maxNameLength?: number;
  /** A shared secret senders must prove they know (§2.1); never sent, only proved. */
  secret?: string | Uint8Array;
  /** Serve over TLS with this certificate and key (PEM). */
  tls?: ServerTls;
  /** Seconds after its last write that a partial nobody resumed is deleted (default 7 days). */
  partialTtl?: number;
  /** Seconds a confirmed id is remembered: its retry within them is confirmed again, not taken twice. */
  dedupWindow?: number;
  /** Closes the receiver (as close() does) when aborted. */
  signal?: AbortSignal;
}

export interface ReceiverEventMap {
  /** A sender connected. */
  connection: [string];
  /** An item is confirmed to its sender (or, `again`, confirmed once more to a retry). */
  confirmed: [ItemReport];
  rejected: [{ peer: string; name: string; reason: string }];
  /** A connection ended; `totals` add it to the earlier connections of the same sender run. */
  session: [SessionReport, RunTotals];
}

/** A receiver running in this process. */
export class AckshipReceiver extends EventEmitter<ReceiverEventMap> {
  readonly #receiver: Receiver;
  readonly #cleanup: () => Promise<void>;
  readonly #bytesOut: () => number;
  #closing: Promise<void> | undefined;
  /** The address it listens on (the real port when asked for port 0). */
  readonly address: Address;

  private constructor(
    receiver: Receiver,
    address: Address,
    cleanup: () => Promise<void>,
    bytesOut: () => number,
  ) {
    super();
    this.#receiver = receiver;
    this.address = address;
    this.#cleanup = cleanup;
    this.#bytesOut = bytesOut;
  }

  /** With a stream `out`: the bytes written to it so far. */
  get bytesOut(): number {
    return this.#bytesOut();
  }

  /** @internal */
  static async start(options: ServeOptions): Promise<AckshipReceiver> {
    await loadHasher();
    const listen = parseAddress(options.listen ?? DEFAULTS.listen, true);
    const opened = await openSink(options);
    let self: AckshipReceiver | undefined;
    try {
      const receiver = new Receiver(
        {
          listen,
          store: opened.sink,
          limits: {
            maxSize: options.maxSize ?? Number.MAX_SAFE_INTEGER,
            maxNameLength: options.maxNameLength ?? DEFAULTS.maxNameLength,
            maxItemsPerConnection: options.maxItems ?? DEFAULTS.maxItemsPerConnection,
          },
          timeouts: {
            idleMs: (options.idleTimeout ?? DEFAULTS.idleTimeoutSeconds) * 1000,
            headerMs: (options.headerTimeout ?? DEFAULTS.headerTimeoutSeconds) * 1000,
          },
          maxConnections: options.maxConnections ?? DEFAULTS.maxConnections,
          ...(options.secret !== undefined && { secret: secretBytes(options.secret) }),
          ...(options.tls !== undefined && { tls: options.tls }),
          graceMs: DEFAULTS.graceSeconds * 1000,
          ...(options.backlog !== undefined && { backlog: options.backlog }),
        },
        {
          sessionStarted: (peer) => self?.emit('connection', peer),
          confirmed: (item) => self?.emit('confirmed', item),
          rejected: (item) => self?.emit('rejected', item),
          sessionEnded: (report, totals) => self?.emit('session', report, totals),
        },
      );
      const bound = await receiver.listen().catch(async (err: Error) => {
        await opened.sink.close();
        throw new LocalIoError(`cannot listen on ${formatAddress(listen)}: ${err.message}`);
      });
      self = new AckshipReceiver(receiver, bound, opened.cleanup, opened.bytesOut);
      const receiverHandle = self;
      options.signal?.addEventListener('abort', () => void receiverHandle.close(), { once: true });
      return self;
    } catch (err) {
      await opened.cleanup();
      throw err;
    }
  }

  /** Stops accepting; commits under way finish, the rest stays resumable. Safe to call again. */
  close(): Promise<void> {
    this.#closing ??= this.#receiver.close().finally(() => this.#cleanup());
    return this.#closing;
  }
}

interface OpenedSink {
  sink: ItemSink;
  /** After the receiver closed: what the sink needed besides (a private temp dir, a timer). */
  cleanup: () => Promise<void>;
  bytesOut: () => number;
}

/** Where the receiver's items go: the application's handler, a directory, or a stream. */
async function openSink(options: ServeOptions): Promise<OpenedSink> {
  if ('handler' in options) {
    if ('out' in options) throw new UsageError('serve() takes `out` or `handler`, not both');
    const windowMs = (options.dedupWindow ?? DEFAULTS.dedupWindowSeconds) * 1000;
    const dedup: DedupRecords =
      options.stateDir === undefined
        ? new MemoryDedup(windowMs)
        : await JournalDedup.open(resolve(options.stateDir), windowMs).catch((err: Error) => {
            throw new LocalIoError(`cannot use ${options.stateDir} as the state directory: ${err.message}`);
          });
    const sink = new HandlerSink({
      handler: options.handler,
      maxInFlight: options.maxInFlight ?? DEFAULTS.handlerConcurrency,
      timeoutMs: (options.handlerTimeout ?? DEFAULTS.handlerTimeoutSeconds) * 1000,
      dedup,
    });
    return { sink, cleanup: async () => {}, bytesOut: () => 0 };
  }
  const toStream = typeof options.out !== 'string';
  const dir =
    typeof options.out === 'string' ? resolve(options.out) : await mkdtemp(join(tmpdir(), 'ackship-recv-'));
  let sweeping: NodeJS.Timeout | undefined;
  const cleanup = async () => {
    clearInterval(sweeping);
    if (toStream) await rm(dir, { recursive: true, force: true });
  };
  const placement =
    typeof options.out === 'string'
      ? new DirectoryPlacement(dir, options.overwrite ?? false)
      : new StdoutPlacement(options.out, !options.spool);
  try {
    const store = await mkdir(dir, { recursive: true })
      .then(() =>
        ReceiveStore.open(dir, placement, (options.dedupWindow ?? DEFAULTS.dedupWindowSeconds) * 1000),
      )
      .catch((err: Error) => {
        throw new LocalIoError(`cannot use ${dir} as the output directory: ${err.message}`);
      });
    // Partials of senders that never came back: swept now, and every hour while serving.
    const ttlMs = (options.partialTtl ?? DEFAULTS.partialTtlSeconds) * 1000;
    await store.sweep(ttlMs);
    sweeping = setInterval(() => void store.sweep(ttlMs), Math.min(ttlMs, 3_600_000));
    sweeping.unref();
    const bytesOut = () => (placement instanceof StdoutPlacement ? placement.bytesOut : 0);
    return { sink: store, cleanup, bytesOut };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** Starts a receiver in this process; resolves once it listens. */
export function serve(options: ServeOptions): Promise<AckshipReceiver> {
  return AckshipReceiver.start(options);
}

export type { ClientStats, ConnectOptions, Message, MessageAck } from './client/client.js';
export { AckshipClient, connect } from './client/client.js';
