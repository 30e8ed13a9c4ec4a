// Delivers items to one receiver, one at a time over one reused connection, retrying each
// until the receiver confirms it (PROTOCOL.md §6). An item counts only on a matching CONFIRM.
import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import {
  InputError,
  PeerError,
  ProtocolError,
  RejectedError,
  TransientError,
  UnconfirmedError,
} from '../errors.js';
import { createHasher, type Hasher, hashFilePrefix } from '../hash.js';
import type { Address } from '../net-address.js';
import type { Frame } from '../protocol/codec.js';
import { isRetryableReject, Kind, MAX_CHUNK_LEN } from '../protocol/constants.js';
import { printableName } from '../protocol/names.js';
import { type SenderEvent, SenderItem } from '../protocol/sender-machine.js';
import { type RetryPolicy, retryDelay, sleep } from './backoff.js';
import { Channel } from './channel.js';
import type { Source } from './sources.js';

export interface SenderOptions {
  address: Address;
  /** Longest silence of the receiver before an attempt is given up. */
  timeoutMs: number;
  retry: RetryPolicy;
  signal: AbortSignal;
}

export interface Delivery {
  hash: bigint;
  attempts: number;
  /** Payload bytes put on the wire over all attempts. */
  bytesSent: number;
  /** Where the last attempt started: the receiver's durable offset when it resumed, else 0. */
  resumedFrom: number;
}

export interface TransferEvents {
  /** `done` of `size` bytes are with the receiver (sent, not yet confirmed). */
  progress?(done: number, size: number): void;
  /** Attempt `attempt` failed with `error`; the next starts after `delayMs`. */
  retry?(attempt: number, error: Error, delayMs: number): void;
}

type Tally = Pick<Delivery, 'bytesSent' | 'resumedFrom'>;

function isRetryable(err: unknown): boolean {
  return err instanceof TransientError || (err instanceof PeerError && err.retryable);
}

export class Sender {
  readonly #options: SenderOptions;
  #channel: Channel | undefined;
  #nextSlot = 0;

  constructor(options: SenderOptions) {
    this.#options = options;
  }

  /** Resolves once the receiver confirmed `source` under `id`; rejects with a typed error otherwise. */
  async deliver(source: Source, id: Buffer, events: TransferEvents = {}): Promise<Delivery> {
    const { retry, signal } = this.#options;
    const tally: Tally = { bytesSent: 0, resumedFrom: 0 };
    for (let attempt = 1; ; attempt++) {
      try {
        const hash = await this.#attempt(source, id, tally, events);
        return { hash, attempts: attempt, ...tally };
      } catch (err) {
        this.#dropChannel();
        if (signal.aborted) throw signal.reason;
        if (!isRetryable(err)) throw err;
        if (attempt > retry.retries) {
          throw new UnconfirmedError(
            `not confirmed after ${attempt} attempts: ${(err as Error).message}; run the same send again to resume`,
          );
        }
        const delayMs = retryDelay(retry, attempt);
        events.retry?.(attempt, err as Error, delayMs);
        await sleep(delayMs, signal);
      }
    }
  }

  /** Ends the session after the last item. */
  close(): void {
    this.#dropChannel();
  }

  #dropChannel(): void {
    this.#channel?.close();
    this.#channel = undefined;
  }

  async #attempt(source: Source, id: Buffer, tally: Tally, events: TransferEvents) {
    const { address, timeoutMs, signal } = this.#options;
    this.#channel ??= await Channel.open(address, timeoutMs, signal);
    const channel = this.#channel;
    const header = { id, size: source.size, name: source.name, mode: source.mode, mtimeMs: source.mtimeMs };
    const item = new SenderItem(this.#nextSlot++, header);
    await channel.send(item.offer());
    const answer = settle(item.receive(await nextFrame(channel)), source);
    const file = await open(source.path, 'r').catch((err: Error) => {
      throw new InputError(`cannot read ${source.label}: ${err.message}`);
    });
    try {
      if (answer.type === 'confirmed-earlier') return await checkEarlier(file, source, answer.hash);
      if (answer.type !== 'accepted') throw new ProtocolError(`unexpected ${answer.type} after OFFER`);
      const { start, hasher } = await resumePoint(file, answer.offset, answer.prefixHash);
      tally.resumedFrom = start;
      let held = start;
      events.progress?.(held, source.size);
      await streamData(channel, item, file, source, start, hasher, (sent) => {
        tally.bytesSent += sent;
        held += sent;
        events.progress?.(held, source.size);
      });
      await assertUnchanged(file, source);
      await channel.send(item.end(hasher.digest()));
      const done = settle(item.receive(await nextFrame(channel)), source);
      if (done.type !== 'confirmed') throw new ProtocolError(`unexpected ${done.type} after END`);
      return done.hash;
    } finally {
      await file.close();
    }
  }
}

async function nextFrame(channel: Channel): Promise<Frame> {
  const message = await channel.next();
  if (message.kind === 'hello') throw new ProtocolError('receiver sent a second hello');
  return message;
}

/** A refusal ends the item: for good, or (a failed checksum or disk) as a retryable failure. */
function settle(event: SenderEvent, source: Source): Exclude<SenderEvent, { type: 'rejected' }> {
  if (event.type !== 'rejected') return event;
  const reason = `receiver rejected ${printableName(source.name)}: ${event.reason}`;
  if (isRetryableReject(event.code)) throw new TransientError(reason);
  throw new RejectedError(reason, event.code);
}

/** §6 resume: continue after the receiver's prefix only when it is our bytes; else start over. */
async function resumePoint(file: FileHandle, offset: number, prefixHash: bigint) {
  const hasher = createHasher();
  if (offset === 0) return { start: 0, hasher };
  await hashFilePrefix(file, offset, hasher);
  if (hasher.digest() === prefixHash) return { start: offset, hasher };
  return { start: 0, hasher: createHasher() };
}

/** A retry of an item the receiver confirmed before: accept it only if it is our content. */
async function checkEarlier(file: FileHandle, source: Source, hash: bigint): Promise<bigint> {
  const hasher = createHasher();
  await hashFilePrefix(file, source.size, hasher);
  if (hasher.digest() !== hash) {
    throw new ProtocolError(
      `receiver confirmed this transfer id earlier for other content than ${source.label}`,
    );
  }
  return hash;
}

async function readChunk(file: FileHandle, at: number, size: number): Promise<Buffer> {
  // A fresh buffer per chunk: the socket holds on to it until the kernel has taken it.
  const buf = Buffer.allocUnsafe(Math.min(MAX_CHUNK_LEN, size - at));
  const { bytesRead } = await file.read(buf, 0, buf.length, at);
  return buf.subarray(0, bytesRead);
}

/** Sends [start, size) as DATA frames, reading the next chunk while the current one is sent. */
async function streamData(
  channel: Channel,
  item: SenderItem,
  file: FileHandle,
  source: Source,
  start: number,
  hasher: Hasher,
  sent: (bytes: number) => void,
): Promise<void> {
  let at = start;
  let next = at < source.size ? readChunk(file, at, source.size) : undefined;
  try {
    while (next !== undefined) {
      const chunk = await next;
      if (chunk.length === 0) throw new InputError(`${source.label} shrank while it was being sent`);
      const end = at + chunk.length;
      next = end < source.size ? readChunk(file, end, source.size) : undefined;
      hasher.update(chunk);
      try {
        await channel.send({ kind: Kind.Data, slot: item.slot, offset: at, payload: chunk });
      } catch (err) {
        // The connection died: if the receiver said why first (REJECT, ERROR), that is the reason.
        throwIfAnswered(channel, item, source);
        throw err;
      }
      sent(chunk.length);
      at = end;
      // The receiver may refuse mid-stream (its disk filled up): stop sending at once.
      throwIfAnswered(channel, item, source);
    }
  } finally {
    await next?.catch(() => {});
  }
}

/** Mid-stream, any frame from the receiver ends the item: a REJECT or an ERROR, or a violation. */
function throwIfAnswered(channel: Channel, item: SenderItem, source: Source): void {
  const early = channel.poll();
  if (early === undefined) return;
  if (early.kind === 'hello') throw new ProtocolError('receiver sent a second hello');
  settle(item.receive(early), source);
  throw new ProtocolError(`unexpected frame kind ${early.kind} while sending data`);
}

async function assertUnchanged(file: FileHandle, source: Source): Promise<void> {
  const now = await file.stat();
  if (
    now.size !== source.size ||
    (source.mtimeMs !== undefined && Math.trunc(now.mtimeMs) !== source.mtimeMs)
  ) {
    throw new InputError(`${source.label} changed while it was being sent; send it again`);
  }
}
