// Delivers items to one receiver, one at a time over one reused connection, retrying each
// until the receiver confirms it (PROTOCOL.md §6). An item counts only on a matching CONFIRM.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  HandshakeError,
  InputError,
  PeerError,
  ProtocolError,
  RejectedError,
  TransientError,
  UnconfirmedError,
} from '../errors.js';
import { FdFile, NOW_MAX } from '../fd-file.js';
import { createHasher, type Hasher, hashFilePrefix, xxh64 } from '../hash.js';
import type { Address } from '../net-address.js';
import { isRetryableReject, Kind, MAX_CHUNK_LEN, MAX_EAGER_SIZE } from '../protocol/constants.js';
import { type OutgoingMessage, SenderMessage } from '../protocol/message-sender.js';
import { printableName } from '../protocol/names.js';
import { NoHelloError } from '../protocol/sender-connection.js';
import { type ItemHeader, type SenderEvent, SenderItem } from '../protocol/sender-machine.js';
import { ABORTED, untilAborted } from './abortable.js';
import { type RetryPolicy, retryDelay, sleep } from './backoff.js';
import { Connection, type PeerTrust, type SlotLink } from './connection.js';
import { EagerPolicy } from './eager-policy.js';
import type { RateLimiter } from './rate-limit.js';
import { type Source, spooledSource } from './sources.js';
import type { StreamWindow } from './stream-window.js';

export interface SenderOptions {
  address: Address;
  /** Longest silence of the receiver before an attempt is given up. */
  timeoutMs: number;
  /** Longest wait for a connection and the receiver's hello. */
  connectTimeoutMs: number;
  retry: RetryPolicy;
  signal: AbortSignal;
  /** The run's id, announced on every connection (§4.8) so the receiver can count per run. */
  session: Buffer;
  /** A shared secret, TLS: how the two ends know each other. */
  trust?: PeerTrust;
  /** --limit-rate: payload bytes a second over the whole run. */
  limiter?: RateLimiter;
}

export interface Delivery {
  /** Bytes confirmed: the file's size, or a stream's length once it ended. */
  size: number;
  hash: bigint;
  attempts: number;
  /** Payload bytes put on the wire over all attempts. */
  bytesSent: number;
  /** Where the last attempt started: the receiver's durable offset when it resumed, else 0. */
  resumedFrom: number;
  /** The receiver held every byte before any of this run's reached it (a re-run, §7.3). */
  alreadyThere: boolean;
}

export interface TransferEvents {
  /** `sent` more payload bytes of `source` are on their way (not yet confirmed). */
  progress?(source: Source, sent: number): void;
  /** An attempt at `source` failed with `error`; the next starts after `delayMs`. */
  retry?(source: Source, attempt: number, error: Error, delayMs: number): void;
}

type Tally = Pick<Delivery, 'bytesSent' | 'resumedFrom' | 'alreadyThere'>;

/** What a dry run learns of an item (an OFFER query, PROTOCOL.md §4.1): nothing moved, nothing kept. */
export type QueryVerdict =
  | { type: 'would-send' }
  | { type: 'already-there' }
  /** The receiver holds a file of that size with other bytes under the name. */
  | { type: 'differs' }
  | { type: 'would-refuse'; reason: string };

/** How to try one item: an attempt, and what the retry loop needs to know of it. */
interface Attempts<T> {
  /** One attempt over `connection`, in a slot of its own. */
  run(connection: Connection, link: SlotLink): Promise<T>;
  /** Grows when the item moved forward for good (a stream's bytes acknowledged): failures in a row start over. */
  progress?(): number;
  /** Handles an error that calls for another way rather than a retry (an older receiver); true once handled. */
  recover?(err: unknown): Promise<boolean>;
  /** Attempt `attempt` failed with `error`; the next starts after `delayMs`. */
  retried?(attempt: number, error: Error, delayMs: number): void;
  /** Stops the attempts: its reason is the error raised. */
  signal: AbortSignal;
}

/** The receiver speaks a version before streams (v3). */
class StreamsUnsupported extends RejectedError {
  constructor(version: number, label: string) {
    super(
      `the receiver speaks protocol version ${version}, which cannot take ${label} as a stream; send it with --spool`,
      0,
    );
  }
}

/**
 * A peer that never sent a hello, on two attempts in a row, is not an ackship receiver (a web
 * server waiting for its request): exit 76 within two connect timeouts, not after every retry.
 */
function notAckship(err: NoHelloError, attempt: number): HandshakeError {
  return new HandshakeError(
    `${err.message}, on ${attempt} attempts: it is not an ackship receiver, or one too loaded to accept (raise --connect-timeout)`,
  );
}

function isRetryable(err: unknown): boolean {
  return err instanceof TransientError || (err instanceof PeerError && err.retryable);
}

/**
 * Delivers items to one receiver over one connection at a time, many items in flight on it,
 * reconnecting (shared by all the items that need it) when it breaks.
 */
export class Sender {
  readonly #options: SenderOptions;
  #current: Connection | undefined;
  #connecting: Promise<Connection> | undefined;
  /** TCP connections this sender opened, for the run's summary. */
  connectionsOpened = 0;
  /** The receiver sent a hello once: then a silence is overload, never "not ackship". */
  #greeted = false;
  /** Aborts a connection still opening when the sender closes (one opened ahead, unused). */
  readonly #closing = new AbortController();
  /** v6: whether small files go with their OFFER (§6.3). */
  readonly #eager = new EagerPolicy();

  constructor(options: SenderOptions) {
    this.#options = options;
  }

  /** Resolves once the receiver confirmed `source` under `id`; rejects with a typed error otherwise. */
  async deliver(source: Source, id: Buffer, events: TransferEvents = {}): Promise<Delivery> {
    const { signal } = this.#options;
    const tally: Tally = { bytesSent: 0, resumedFrom: 0, alreadyThere: false };
    /** What goes on the wire: `source`, or its spool when the receiver cannot take streams. */
    let sending = source;
    let spoolDir: string | undefined;
    try {
      const { value, attempts } = await this.#retrying({
        signal,
        run: (connection, link) =>
          sending.stream === undefined
            ? this.#attempt(connection, link, sending, id, tally, events)
            : streamAttempt(connection, link, sending, sending.stream, id, tally, events),
        // A long stream that keeps moving between resets goes on.
        progress: () => sending.stream?.released ?? 0,
        recover: async (err) => {
          const input = err instanceof StreamsUnsupported ? sending.stream?.takeInput() : undefined;
          if (input === undefined) return false;
          // A receiver older than streams: spool the input, as senders before v3 did, and send a file.
          spoolDir = await mkdtemp(join(tmpdir(), 'ackship-spool-'));
          sending = await spooledSource(input, source.name, source.label, join(spoolDir, 'stream'), signal);
          return true;
        },
        retried: (attempt, err, delayMs) => events.retry?.(source, attempt, err, delayMs),
      });
      // Spelled out, not `{ ...value, attempts, ...tally }`: on Node 20's V8 (11.3) an object
      // spread and then given more properties gets a shape of its own each time (~0.4 KiB in
      // the old space), and outcomes are kept for the run: a heap snapshot of a 20,000-file
      // send held 15,457 such shapes.
      const { bytesSent, resumedFrom, alreadyThere } = tally;
      return { size: value.size, hash: value.hash, attempts, bytesSent, resumedFrom, alreadyThere };
    } finally {
      if (spoolDir !== undefined) await rm(spoolDir, { recursive: true, force: true });
    }
  }

  /**
   * v4: resolves once the receiving application took `message` (or had taken it before);
   * `signal` stops this message alone. Its bytes are sent from memory on every attempt.
   */
  async deliverMessage(
    message: OutgoingMessage,
    signal: AbortSignal,
  ): Promise<{ duplicate: boolean; reply: Buffer; attempts: number }> {
    const { value, attempts } = await this.#retrying({
      signal,
      run: (connection, link) => {
        // Aborted while it waited for a slot: nothing of it was sent, and nothing will be.
        if (signal.aborted) throw signal.reason;
        return messageAttempt(connection, link, message);
      },
    });
    // Spelled out, not `{ ...value, attempts }`: see deliver.
    return { duplicate: value.duplicate, reply: value.reply, attempts };
  }

  /** A dry run of `source` under `id`: what the receiver would do with it, asked over the same connections. */
  async query(source: Source, id: Buffer, events: TransferEvents = {}): Promise<QueryVerdict> {
    const { value } = await this.#retrying({
      signal: this.#options.signal,
      run: (connection, link) => queryAttempt(connection, link, source, id),
      retried: (attempt, err, delayMs) => events.retry?.(source, attempt, err, delayMs),
    });
    return value;
  }

  /** Whether a connection is open and usable now. */
  get connected(): boolean {
    return this.#current?.usable === true;
  }

  /**
   * Runs attempts until one succeeds, reconnecting (with backoff and jitter) after each
   * retryable failure; counts failures in a row, and how long they have lasted.
   */
  async #retrying<T>(attempts: Attempts<T>): Promise<{ value: T; attempts: number }> {
    const { retry } = this.#options;
    const { signal } = attempts;
    let failingSince = 0;
    /** Attempts in a row whose peer took the connection and sent no hello. */
    let silentPeers = 0;
    for (let attempt = 1, failures = 0; ; attempt++) {
      const before = attempts.progress?.() ?? 0;
      try {
        const connection = await this.#connect();
        const value = await connection.withSlot((link) => attempts.run(connection, link));
        return { value, attempts: attempt };
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        if (await attempts.recover?.(err)) {
          attempt--;
          continue;
        }
        if (!isRetryable(err)) throw err;
        silentPeers = err instanceof NoHelloError ? silentPeers + 1 : 0;
        if (silentPeers >= 2 && !this.#greeted) throw notAckship(err as NoHelloError, attempt);
        failures = (attempts.progress?.() ?? 0) > before ? 1 : failures + 1;
        if (failures === 1) failingSince = performance.now();
        const delayMs = retryDelay(retry, attempt);
        const failingFor = performance.now() + delayMs - failingSince;
        if (failures > retry.retries || failingFor > retry.maxTimeMs) {
          const spent = ((performance.now() - failingSince) / 1000).toFixed(1);
          throw new UnconfirmedError(
            `not confirmed after ${attempt} attempts (failing for ${spent} s): ${(err as Error).message}; run the same send again to resume`,
          );
        }
        attempts.retried?.(attempt, err as Error, delayMs);
        await sleep(delayMs, signal);
      }
    }
  }

  /**
   * Opens the connection now, ahead of the first item, so that its handshake (round trips on a
   * long link, TLS's too) overlaps the caller's scan of its sources. A failure is left to the
   * first item's attempt, which connects again as it would have.
   */
  connectAhead(): void {
    this.#connect().catch(() => {});
  }

  /** Ends the session after the last item. */
  close(): void {
    this.#closing.abort(new TransientError('the run ended before the connection was used'));
    this.#current?.close();
    this.#current = undefined;
  }

  /** The live connection, or a new one; items that need one at the same time share it. */
  #connect(): Promise<Connection> {
    if (this.#connecting !== undefined && (this.#current === undefined || this.#current.usable)) {
      return this.#connecting;
    }
    const { address, timeoutMs, connectTimeoutMs, signal, session, trust, limiter } = this.#options;
    this.#current = undefined;
    const timeouts = { idleMs: timeoutMs, connectMs: connectTimeoutMs };
    const opening = AbortSignal.any([signal, this.#closing.signal]);
    const connecting = Connection.open(address, timeouts, opening, session, trust, limiter).then(
      (connection) => {
        this.#greeted = true;
        this.#current = connection;
        this.connectionsOpened++;
        return connection;
      },
    );
    this.#connecting = connecting;
    connecting.catch(() => {
      if (this.#connecting === connecting) this.#connecting = undefined;
    });
    return connecting;
  }

  async #attempt(
    connection: Connection,
    link: SlotLink,
    source: Source,
    id: Buffer,
    tally: Tally,
    events: TransferEvents,
  ): Promise<{ size: number; hash: bigint }> {
    const { size } = source;
    const header = itemHeader(source, id);
    if (source.directory && connection.version < 2) {
      throw new RejectedError(
        `the receiver speaks protocol version 1, which cannot create directory ${source.label}`,
        0,
      );
    }
    const item = new SenderItem(link.slot, header);
    const small = !source.directory && size <= MAX_EAGER_SIZE && connection.version >= 6;
    // An empty file has no bytes to send in vain: it goes eagerly, and tells the probe nothing.
    const way = !small ? 'ask' : size === 0 ? 'eager' : await this.#eager.next();
    // With the connection's eager bytes at their bound, it asks like a larger file (§6.3).
    if (way === 'eager' && connection.reserveEager(link.slot, size))
      return eagerAttempt(connection, link, item, source, tally, events, this.#eager);
    let held = false;
    let answer: ReturnType<typeof settle>;
    try {
      await connection.send(item.offer());
      answer = settle(item.receive(await link.next()), source);
      held = answer.type === 'confirmed-earlier' || (answer.type === 'accepted' && answer.offset === size);
    } finally {
      if (way === 'probe') this.#eager.probed(held);
    }
    return afterAnswer(connection, async () => {
      if (source.directory) {
        const nothing = createHasher();
        // A retry of a directory whose CONFIRM was lost is confirmed at once: it holds nothing.
        if (answer.type === 'confirmed-earlier')
          return { size, hash: checkNothing(answer.hash, nothing, source) };
        return { size, hash: await finish(connection, link, item, source, nothing) };
      }
      const file = openSource(source);
      try {
        if (answer.type === 'confirmed-earlier')
          return { size, hash: await checkEarlier(file, source, answer.hash) };
        if (answer.type !== 'accepted') throw new ProtocolError(`unexpected ${answer.type} after OFFER`);
        const { start, hasher } = await resumePoint(file, answer.offset, answer.prefixHash);
        tally.resumedFrom = start;
        tally.alreadyThere = size > 0 && start === size && tally.bytesSent === 0;
        events.progress?.(source, start);
        await connection.exclusive(() =>
          streamData(connection, link, item, file, source, start, hasher, (sent) => {
            tally.bytesSent += sent;
            events.progress?.(source, sent);
          }),
        );
        assertUnchanged(file, source);
        return { size, hash: await finish(connection, link, item, source, hasher) };
      } finally {
        file.close();
      }
    });
  }
}

/** What an OFFER says of a file or directory source. */
function itemHeader(source: Source, id: Buffer): ItemHeader {
  return {
    id,
    size: source.size,
    name: source.name,
    mode: source.mode,
    mtimeMs: source.mtimeMs,
    directory: source.directory,
  };
}

/**
 * Runs the rest of an item once the receiver answered its OFFER. If it fails, the receiver still
 * holds the item open, so its slot (and the connection) cannot carry on; the other items retry.
 */
async function afterAnswer<T>(connection: Connection, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (!(err instanceof RejectedError) && connection.usable) connection.abort(err as Error);
    throw err;
  }
}

/**
 * v3 (§4.9): sends a stream from the receiver's offset as CHUNKs, each with its own hash, while
 * the receiver's ACKs free the window; then the TRAILER, and waits for the verdict.
 */
async function streamAttempt(
  connection: Connection,
  link: SlotLink,
  source: Source,
  stream: StreamWindow,
  id: Buffer,
  tally: Tally,
  events: TransferEvents,
): Promise<{ size: number; hash: bigint }> {
  if (connection.version < 3) throw new StreamsUnsupported(connection.version, source.label);
  // Known when the input ended in an earlier attempt, whose TRAILER may have been confirmed.
  const known = stream.total;
  const item = new SenderItem(link.slot, { id, size: known?.size, name: source.name, stream: true });
  await connection.send(item.offer());
  const answer = settle(item.receive(await link.next()), source);
  if (answer.type === 'confirmed-earlier') {
    if (known === undefined || answer.hash !== known.hash) {
      throw new ProtocolError(
        `receiver confirmed this transfer id earlier for other content than ${source.label}`,
      );
    }
    return known;
  }
  if (answer.type !== 'accepted') throw new ProtocolError(`unexpected ${answer.type} after OFFER`);
  return afterAnswer(connection, () =>
    sendStream(connection, link, item, source, stream, answer, tally, events),
  );
}

async function sendStream(
  connection: Connection,
  link: SlotLink,
  item: SenderItem,
  source: Source,
  stream: StreamWindow,
  accepted: { offset: number; prefixHash: bigint },
  tally: Tally,
  events: TransferEvents,
): Promise<{ size: number; hash: bigint }> {
  const { offset } = accepted;
  stream.resumeAt(offset, accepted.prefixHash);
  tally.resumedFrom = offset;
  // Everything the receiver says while we send: ACKs free the window; anything else ends the item.
  const verdict = (async () => {
    for (;;) {
      const event = item.receive(await link.next());
      if (event.type !== 'acked') return event;
      stream.release(event.offset);
    }
  })();
  // Stops the send loop as soon as the receiver has its say (or the connection dies).
  const answered = new AbortController();
  verdict.then(
    () => answered.abort(),
    () => answered.abort(),
  );
  let at = offset;
  for (;;) {
    const next = await untilAborted(stream.at(at), answered.signal);
    if (next === undefined) break;
    if (next === ABORTED) {
      const early = await verdict;
      settle(early, source);
      throw new ProtocolError(`unexpected ${early.type} while sending a stream`);
    }
    await connection.exclusive(() =>
      connection.send({ kind: Kind.Chunk, slot: link.slot, offset: at, hash: xxh64(next), payload: next }),
    );
    at += next.length;
    tally.bytesSent += next.length;
    events.progress?.(source, next.length);
  }
  const total = stream.total as { size: number; hash: bigint };
  await connection.send(item.trailer(total.size, total.hash));
  const done = settle(await verdict, source);
  if (done.type !== 'confirmed') throw new ProtocolError(`unexpected ${done.type} after TRAILER`);
  return total;
}

/** END with the payload's hash, then the receiver's verdict. */
async function finish(
  connection: Connection,
  link: SlotLink,
  item: SenderItem,
  source: Source,
  hasher: Hasher,
) {
  await connection.send(item.end(hasher.digest()));
  const done = settle(item.receive(await link.next()), source);
  if (done.type !== 'confirmed') throw new ProtocolError(`unexpected ${done.type} after END`);
  return done.hash;
}

/** A refusal ends the item: for good, or (a failed checksum or disk) as a retryable failure. */
function settle(event: SenderEvent, source: Source): Exclude<SenderEvent, { type: 'rejected' }> {
  if (event.type !== 'rejected') return event;
  const reason = `receiver rejected ${printableName(source.name)}: ${event.reason}`;
  if (isRetryableReject(event.code)) throw new TransientError(reason);
  throw new RejectedError(reason, event.code);
}

/** §6 resume: continue after the receiver's prefix only when it is our bytes; else start over. */
async function resumePoint(file: FdFile, offset: number, prefixHash: bigint) {
  const hasher = createHasher();
  if (offset === 0) return { start: 0, hasher };
  await hashFilePrefix(file, offset, hasher);
  if (hasher.digest() === prefixHash) return { start: offset, hasher };
  return { start: 0, hasher: createHasher() };
}

/** A directory confirmed earlier must carry the hash of nothing. */
function checkNothing(hash: bigint, nothing: Hasher, source: Source): bigint {
  if (hash !== nothing.digest()) {
    throw new ProtocolError(
      `receiver confirmed directory ${source.label} earlier with the hash of some content`,
    );
  }
  return hash;
}

/** A retry of an item the receiver confirmed before: accept it only if it is our content. */
async function checkEarlier(file: FdFile, source: Source, hash: bigint): Promise<bigint> {
  const hasher = createHasher();
  await hashFilePrefix(file, source.size, hasher);
  if (hasher.digest() !== hash) {
    throw new ProtocolError(
      `receiver confirmed this transfer id earlier for other content than ${source.label}`,
    );
  }
  return hash;
}

function openSource(source: Source): FdFile {
  try {
    return FdFile.openForReading(source.path);
  } catch (err) {
    throw new InputError(`cannot read ${source.label}: ${(err as Error).message}`);
  }
}

/** Small reads on the event loop's thread; larger ones in the pool, overlapping with sending. */
async function readChunk(file: FdFile, buf: Buffer, at: number, size: number): Promise<Buffer> {
  const length = Math.min(buf.length, size - at);
  const bytesRead =
    length <= NOW_MAX ? file.readNow(buf, 0, length, at) : (await file.read(buf, 0, length, at)).bytesRead;
  return buf.subarray(0, bytesRead);
}

/** Sends [start, size) as DATA frames, reading the next chunk while the current one is sent. */
async function streamData(
  connection: Connection,
  link: SlotLink,
  item: SenderItem,
  file: FdFile,
  source: Source,
  start: number,
  hasher: Hasher,
  sent: (bytes: number) => void,
): Promise<void> {
  let at = start;
  // Two buffers in turn: one is read into while the other is sent. The send of a chunk resolves
  // only once the kernel has its bytes, so its buffer is free again when it is read into next.
  const buffers = [0, 1].map(() =>
    Buffer.allocUnsafe(Math.min(MAX_CHUNK_LEN, Math.max(source.size - start, 1))),
  );
  let turn = 0;
  const read = (from: number) => readChunk(file, buffers[turn++ % 2] as Buffer, from, source.size);
  let next = at < source.size ? read(at) : undefined;
  try {
    while (next !== undefined) {
      const chunk = await next;
      if (chunk.length === 0) throw new InputError(`${source.label} shrank while it was being sent`);
      const end = at + chunk.length;
      next = end < source.size ? read(end) : undefined;
      hasher.update(chunk);
      try {
        await connection.send({ kind: Kind.Data, slot: item.slot, offset: at, payload: chunk }, true);
      } catch (err) {
        // The connection died: if the receiver said why first (a REJECT), that is the reason.
        throwIfAnswered(link, item, source);
        throw err;
      }
      sent(chunk.length);
      at = end;
      // The receiver may refuse mid-stream (its disk filled up): stop sending at once.
      throwIfAnswered(link, item, source);
    }
  } finally {
    await next?.catch(() => {});
  }
}

/**
 * v6 (§6.3): a small file read whole and sent with its OFFER and END in one write, so that its
 * verdict comes one round trip after the OFFER, not two. Every attempt sends it from 0: a
 * prefix the receiver kept would save less than the round trip that resuming costs.
 */
async function eagerAttempt(
  connection: Connection,
  link: SlotLink,
  item: SenderItem,
  source: Source,
  tally: Tally,
  events: TransferEvents,
  policy: EagerPolicy,
): Promise<{ size: number; hash: bigint }> {
  const file = openSource(source);
  let payload: Buffer;
  try {
    payload = Buffer.allocUnsafe(source.size);
    const bytesRead = source.size === 0 ? 0 : file.readNow(payload, 0, source.size, 0);
    if (bytesRead !== source.size) throw new InputError(`${source.label} shrank while it was being sent`);
    assertUnchanged(file, source);
  } finally {
    file.close();
  }
  const hash = xxh64(payload);
  const sentBefore = tally.bytesSent;
  // A failure from here on is handled as after any item's first answer: a retry goes over a
  // new connection.
  return afterAnswer(connection, async () => {
    // Not awaited: the frames of items sent in one tick leave in one write, whose callbacks all
    // wait for the last byte of all of them, while an answer proves the receiver has ours. The
    // eager bound caps what waits in memory (16 MiB per connection, §6.3). A failed write fails
    // the connection, and with it the wait for the answer.
    connection.sendAll(item.eager(payload, hash)).catch(() => {});
    tally.bytesSent += payload.length;
    events.progress?.(source, payload.length);
    let done = settle(item.receive(await link.next()), source);
    if (done.type === 'held') {
      // Already there: reported so (with the bytes that went along all the same).
      tally.resumedFrom = source.size;
      tally.alreadyThere = sentBefore === 0;
      policy.held();
      done = settle(item.receive(await link.next()), source);
    }
    if (done.type !== 'confirmed') throw new ProtocolError(`unexpected ${done.type} after END`);
    return { size: source.size, hash };
  });
}

/** Mid-stream, any frame from the receiver ends the item: a REJECT or an ERROR, or a violation. */
function throwIfAnswered(link: SlotLink, item: SenderItem, source: Source): void {
  const early = link.poll();
  if (early === undefined) return;
  settle(item.receive(early), source);
  throw new ProtocolError(`unexpected frame kind ${early.kind} while sending data`);
}

function assertUnchanged(file: FdFile, source: Source): void {
  const now = file.stat();
  if (
    now.size !== source.size ||
    (source.mtimeMs !== undefined && Math.trunc(now.mtimeMs) !== source.mtimeMs)
  ) {
    throw new InputError(`${source.label} changed while it was being sent; send it again`);
  }
}

/** v4 (§4.12): a message's frames at once, without waiting for an ACCEPT, then its answer. */
async function messageAttempt(
  connection: Connection,
  link: SlotLink,
  message: OutgoingMessage,
): Promise<{ duplicate: boolean; reply: Buffer }> {
  if (connection.version < 4) {
    throw new RejectedError(
      `the receiver speaks protocol version ${connection.version}, which takes no messages (upgrade it to ackship with protocol 4)`,
      0,
    );
  }
  const item = new SenderMessage(link.slot, message);
  // One message's frames are never interleaved with another's: the receiver hands them on in order.
  await connection.sendAll(item.frames());
  const answer = item.receive(await link.next());
  if (answer.type === 'rejected') {
    const what = message.name === '' ? `message ${JSON.stringify(message.key)}` : printableName(message.name);
    const reason = `receiver rejected ${what}: ${answer.reason}`;
    if (isRetryableReject(answer.code)) throw new TransientError(reason);
    throw new RejectedError(reason, answer.code);
  }
  return answer;
}

/** v4: an OFFER with the query flag; its one answer says what a real OFFER would meet. */
async function queryAttempt(
  connection: Connection,
  link: SlotLink,
  source: Source,
  id: Buffer,
): Promise<QueryVerdict> {
  if (connection.version < 4) {
    throw new HandshakeError(
      `the receiver speaks protocol version ${connection.version}, which cannot answer --dry-run (it needs version 4)`,
    );
  }
  // A stream's bytes are not known before they are read: it would be sent, whatever is there.
  if (source.stream !== undefined) return { type: 'would-send' };
  const item = new SenderItem(link.slot, { ...itemHeader(source, id), query: true });
  await connection.send(item.offer());
  const answer = item.receive(await link.next());
  if (answer.type === 'rejected') return { type: 'would-refuse', reason: answer.reason };
  if (answer.type === 'confirmed-earlier') return { type: 'already-there' };
  if (answer.type !== 'accepted') throw new ProtocolError(`unexpected ${answer.type} after a query`);
  // §7.3: a file of this size is under the name; whether it is ours, only our bytes can say.
  if (source.directory || source.size === 0 || answer.offset !== source.size) return { type: 'would-send' };
  const file = openSource(source);
  try {
    const { start } = await resumePoint(file, answer.offset, answer.prefixHash);
    return { type: start === source.size ? 'already-there' : 'differs' };
  } finally {
    file.close();
  }
}
