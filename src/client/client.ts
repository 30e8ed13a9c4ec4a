// The programs-to-programs client (`connect()`): a small pool of long-lived connections, every
// message multiplexed over them, each call resolved only once the receiving application took
// the message. Messages are sent from the caller's memory (never spooled), bounded by
// maxInFlight/maxInFlightBytes, and retried over the pool with the same id until confirmed.
import { randomBytes, randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { addAbortSignal, Readable } from 'node:stream';
import { DEFAULTS } from '../defaults.js';
import { AbortedError, UsageError } from '../errors.js';
import { createHasher, hashHex, loadHasher, xxh64 } from '../hash.js';
import { parseAddress } from '../net-address.js';
import { MAX_CHUNK_LEN, TRANSFER_ID_LEN } from '../protocol/constants.js';
import { messageFieldsProblem, messageId } from '../protocol/message-fields.js';
import type { OutgoingMessage } from '../protocol/message-sender.js';
import { ABORTED, untilAborted } from '../send/abortable.js';
import { type PeerOptions, senderTuning } from '../send/peer-options.js';
import { Sender } from '../send/sender.js';
import { InFlight } from './in-flight.js';

export interface ConnectOptions extends PeerOptions {
  /** Long-lived connections to spread messages over (default 1). */
  connections?: number;
  /** Aborts every call and closes the connections. */
  signal?: AbortSignal;
  /** Messages sent and not yet confirmed, at most (default 256); past it `send` waits. */
  maxInFlight?: number;
  /** Payload bytes sent and not yet confirmed, at most (default 64 MiB); past it `send` waits. */
  maxInFlightBytes?: number;
}

export interface Message {
  /**
   * The payload. Bytes are sent from this memory as they are: do not change them until the call
   * settles. A Readable is read whole first (a message is resent whole, so it is held until
   * confirmed), up to maxInFlightBytes.
   */
  data: Uint8Array | Readable;
  /** The idempotency key: the receiver runs its handler once per id (within its dedup window). Generated when absent. */
  id?: string;
  /** A label for the receiving application. */
  name?: string;
  /** Small string pairs carried to the receiving application. */
  meta?: Record<string, string>;
}

export interface MessageAck {
  id: string;
  /** The application had taken this id before: it was not called again, and `reply` is the one it gave then. */
  duplicate: boolean;
  size: number;
  /** xxHash64 of the payload, as 16 hex digits, as the receiver checked it. */
  hash: string;
  attempts: number;
  /** What the receiving handler resolved with, when it resolved with bytes or a string. */
  reply?: Buffer;
}

export interface ClientStats {
  connectionsOpen: number;
  /** TCP connections opened so far: the pool's size, not the number of messages. */
  connectionsOpened: number;
  inFlight: number;
  /** Calls waiting for room under maxInFlight/maxInFlightBytes. */
  queued: number;
  bytesInFlight: number;
}

/**
 * A signal that aborts, with an AbortedError, when any of `signals` does; `dispose` unhooks it
 * from them (a long-lived client's signal would otherwise collect a listener per call).
 */
function abortedBy(signals: Array<AbortSignal | undefined>, what: string) {
  const controller = new AbortController();
  const abort = () => controller.abort(new AbortedError(`${what} was aborted`));
  const dispose = () => {
    for (const signal of signals) signal?.removeEventListener('abort', abort);
  };
  for (const signal of signals) {
    if (signal?.aborted) abort();
    signal?.addEventListener('abort', abort, { once: true });
  }
  return { signal: controller.signal, dispose };
}

function hashOf(data: Buffer): bigint {
  if (data.length <= MAX_CHUNK_LEN) return xxh64(data);
  const hasher = createHasher();
  for (let at = 0; at < data.length; at += MAX_CHUNK_LEN)
    hasher.update(data.subarray(at, at + MAX_CHUNK_LEN));
  return hasher.digest();
}

/**
 * A Readable's bytes, read whole: a message has no resume (§6.2), so until it is confirmed the
 * client must hold every byte of it to send it again. Past `limit` bytes (maxInFlightBytes) it
 * stops reading and refuses, rather than hold without bound: such a stream goes with send().
 */
async function readWhole(stream: Readable, limit: number, signal: AbortSignal): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of addAbortSignal(signal, stream)) {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
      total += bytes.length;
      if (total > limit) {
        stream.destroy();
        throw new UsageError(
          `a message read from a stream is held in memory until confirmed, and this one passed maxInFlightBytes (${limit} bytes); send it with send() as a stream item, which resumes`,
        );
      }
      chunks.push(bytes);
    }
  } catch (err) {
    throw signal.aborted ? signal.reason : err;
  }
  return Buffer.concat(chunks, total);
}

function bytesOf(data: Uint8Array): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

function outgoing(message: Message, data: Buffer): OutgoingMessage {
  const fields = {
    key: message.id ?? randomUUID(),
    name: message.name ?? '',
    meta: Object.entries(message.meta ?? {}),
  };
  const problem = messageFieldsProblem(fields);
  if (problem !== undefined) throw new UsageError(`cannot send this message: ${problem}`);
  const { key, name, meta } = fields;
  // Spelled out, not `{ ...fields, id }`: on Node 20's V8 that gets a shape of its own each time.
  return { key, name, meta, id: messageId(key), data, hash: hashOf(data) };
}

export class AckshipClient {
  readonly #lanes: Sender[];
  /** Calls on each lane now: a new call goes to the least loaded. */
  readonly #load: Int32Array;
  readonly #inFlight: InFlight;
  /** maxInFlightBytes: also the most a Readable message may hold. */
  readonly #maxBytes: number;
  readonly #signal: AbortSignal;
  /** Every call not yet settled, whether or not its caller still waits (an aborted one is finished). */
  readonly #pending = new Set<Promise<unknown>>();
  #closing: Promise<void> | undefined;

  /** @internal */
  constructor(target: string, options: ConnectOptions) {
    const address = parseAddress(target);
    const session = randomBytes(TRANSFER_ID_LEN);
    this.#signal = abortedBy([options.signal], 'the client').signal;
    // Every call in flight listens to it (and stops listening when it settles).
    setMaxListeners(0, this.#signal);
    const connections = options.connections ?? DEFAULTS.connections;
    if (!Number.isInteger(connections) || connections < 1)
      throw new UsageError(`connections must be a whole number of at least 1, not ${connections}`);
    const tuning = senderTuning(options);
    this.#lanes = Array.from(
      { length: connections },
      () => new Sender({ address, ...tuning, signal: this.#signal, session }),
    );
    this.#load = new Int32Array(this.#lanes.length);
    this.#maxBytes = options.maxInFlightBytes ?? DEFAULTS.maxInFlightBytes;
    this.#inFlight = new InFlight(options.maxInFlight ?? DEFAULTS.maxInFlight, this.#maxBytes);
    this.#signal.addEventListener('abort', () => this.#closeLanes(), { once: true });
  }

  /**
   * Resolves once the receiving application took the message (or had taken it before: the
   * ack says `duplicate`). Rejects with a RejectedError carrying the application's reason when
   * it refused, an UnconfirmedError after the retries, an AbortedError when aborted. An aborted
   * call may still have reached the receiver: send it again with the same id to learn its fate.
   */
  async send(message: Message, options: { signal?: AbortSignal } = {}): Promise<MessageAck> {
    if (this.#closing !== undefined) throw new UsageError('the client is closed');
    const { data } = message;
    if (!(data instanceof Uint8Array) && !(data instanceof Readable))
      throw new UsageError('message.data must be a Buffer, a Uint8Array or a Readable');
    // Without a signal of its own, a call stops with the client's: no controller per call.
    const { signal, dispose } =
      options.signal === undefined
        ? { signal: this.#signal, dispose: () => {} }
        : abortedBy([this.#signal, options.signal], 'the send');
    let item: OutgoingMessage;
    try {
      const bytes = data instanceof Readable ? await readWhole(data, this.#maxBytes, signal) : bytesOf(data);
      item = outgoing(message, bytes);
      await this.#inFlight.acquire(item.data.length, signal);
    } catch (err) {
      dispose();
      throw err;
    }
    const lane = this.#leastLoaded();
    this.#load[lane] = (this.#load[lane] ?? 0) + 1;
    const work = (this.#lanes[lane] as Sender).deliverMessage(item, signal);
    const settled = work
      .catch(() => {})
      .finally(() => {
        this.#load[lane] = (this.#load[lane] ?? 1) - 1;
        this.#inFlight.release(item.data.length);
        this.#pending.delete(settled);
        dispose();
      });
    this.#pending.add(settled);
    // The client's own abort fails its connections, and with them this work, at once: only a
    // call's own signal needs watching (a listener per call was a twentieth of the client's time).
    const result = signal === this.#signal ? await work : await untilAborted(work, signal);
    if (result === ABORTED) throw signal.reason;
    return {
      id: item.key,
      duplicate: result.duplicate,
      size: item.data.length,
      hash: hashHex(item.hash),
      attempts: result.attempts,
      ...(result.reply.length > 0 && { reply: result.reply }),
    };
  }

  get stats(): ClientStats {
    return {
      connectionsOpen: this.#lanes.filter((lane) => lane.connected).length,
      connectionsOpened: this.#lanes.reduce((sum, lane) => sum + lane.connectionsOpened, 0),
      inFlight: this.#inFlight.count,
      queued: this.#inFlight.queued,
      bytesInFlight: this.#inFlight.bytes,
    };
  }

  /** Takes no more calls, waits for those under way to settle, then closes the connections. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      while (this.#pending.size > 0) await Promise.all(this.#pending);
      this.#closeLanes();
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #leastLoaded(): number {
    let best = 0;
    for (let i = 1; i < this.#load.length; i++)
      if ((this.#load[i] as number) < (this.#load[best] as number)) best = i;
    return best;
  }

  #closeLanes(): void {
    for (const lane of this.#lanes) lane.close();
  }
}

/** A client for the receiver at `target` (HOST[:PORT]); its connections open on the first send. */
export async function connect(target: string, options: ConnectOptions = {}): Promise<AckshipClient> {
  await loadHasher();
  return new AckshipClient(target, options);
}
