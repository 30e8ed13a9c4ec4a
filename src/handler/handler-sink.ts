// The receiver whose items go to an application's handler (`serve({ handler })`, `recv --exec`):
// each new item is handed over as it arrives, and confirmed only once the handler resolved AND
// the whole payload matched its END; the reply and the fact are recorded before the answer goes
// out, so a retry of the same id is answered from the record and never runs the handler twice.
import type { Readable } from 'node:stream';
import { createHasher } from '../hash.js';
import { MAX_REPLY_LEN, RejectCode } from '../protocol/constants.js';
import type { Payload } from '../protocol/payload.js';
import type { CommitOutcome, ValidOffer } from '../protocol/receiver-machine.js';
import { errorMessage, type ItemSink, type ItemWriter, type OpenResult } from '../store/item-writer.js';
import type { DedupRecords } from './dedup.js';
import { Intake, PayloadError } from './intake.js';
import { Permits } from './permits.js';
import { Refusal } from './refusal.js';

/** What a handler is given: one item, once, with its payload as it arrives. */
export interface HandlerItem {
  /** The sender's idempotency key (a message's `id`; for a file, its transfer id in hex). */
  readonly id: string;
  readonly name: string;
  readonly meta: Readonly<Record<string, string>>;
  /** Bytes the payload declares; `bytes()` and `stream()` deliver exactly these, checked. */
  readonly size: number;
  /** HOST:PORT of the sender. */
  readonly peer: string;
  /** The handler was called for this id before, and that call did not end in a confirmation. */
  readonly redelivered: boolean;
  /** Aborted when the handler's deadline passes or the sender goes away before the item is whole. */
  readonly signal: AbortSignal;
  /** The whole payload, after its length and xxHash64 checked out. Call this or `stream()`, once. */
  bytes(): Promise<Buffer>;
  /** The payload as it arrives; it ends only after the checksum matched, and errors if it did not. */
  stream(): Readable;
}

/**
 * Resolves when the application has the item (its reply, if bytes or a string, goes back to
 * the sender); throws a `Refusal` to refuse it, anything else to fail it (the sender retries).
 */
export type Handler = (item: HandlerItem) => unknown;

export interface HandlerSinkOptions {
  handler: Handler;
  /** Handlers running at once; later items wait (and their connections' reads with them). */
  maxInFlight: number;
  /** How long one call may take before it counts as failed (the sender retries). */
  timeoutMs: number;
  dedup: DedupRecords;
}

/** Ids whose handler ran and was not confirmed, remembered to say `redelivered`; oldest forgotten first. */
const MAX_ATTEMPTED = 100_000;

/** What a handler resolved with, as the bytes of the reply. */
function replyBytes(value: unknown): Buffer {
  const reply =
    typeof value === 'string'
      ? Buffer.from(value, 'utf8')
      : value instanceof Uint8Array
        ? Buffer.from(value.buffer, value.byteOffset, value.byteLength)
        : Buffer.alloc(0);
  if (reply.length > MAX_REPLY_LEN)
    throw new Refusal(`the handler's reply is ${reply.length} bytes, more than ${MAX_REPLY_LEN}`);
  return reply;
}

function failure(err: unknown): CommitOutcome {
  if (err instanceof Refusal)
    return {
      type: 'reject',
      code: err.retryable ? RejectCode.HandlerFailed : RejectCode.Refused,
      reason: err.message,
    };
  if (err instanceof PayloadError) return { type: 'reject', code: RejectCode.Checksum, reason: err.message };
  return {
    type: 'reject',
    code: RejectCode.HandlerFailed,
    reason: `the handler failed: ${errorMessage(err)}`,
  };
}

/** Why an item cannot be a handler's, if it cannot. */
function unsupported(offer: ValidOffer): string | undefined {
  if (offer.directory) return 'this receiver hands items to an application, which takes no directories';
  if (offer.stream)
    return 'this receiver hands items to an application, which takes streams only spooled (send with --spool)';
  return undefined;
}

/**
 * A call's AbortSignal, made only if the handler looks at it: most handlers never do, and an
 * AbortController per message was a twentieth of the receiver's time at 10,000 messages/s.
 */
class LazyAbort {
  #controller: AbortController | undefined;
  #reason: Error | undefined;

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#reason !== undefined) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  abort(reason: Error): void {
    if (this.#reason !== undefined) return;
    this.#reason = reason;
    this.#controller?.abort(reason);
  }
}

class HandlerWriter implements ItemWriter {
  readonly name: string;
  readonly size: number;
  readonly #intake: Intake;
  readonly #outcome: Promise<CommitOutcome>;
  onTakeover: () => void = () => {};
  onDurable: (offset: number) => void = () => {};

  constructor(offer: ValidOffer, intake: Intake, outcome: Promise<CommitOutcome>) {
    this.name = offer.name;
    this.size = offer.size;
    this.#intake = intake;
    this.#outcome = outcome;
  }

  write(_offset: number, payload: Payload): Promise<void> {
    return this.#intake.write(payload);
  }

  async commit(expected: bigint): Promise<CommitOutcome> {
    this.#intake.finish(expected);
    return this.#outcome;
  }

  async abandon(): Promise<void> {
    this.#intake.abandon();
  }
}

export class HandlerSink implements ItemSink {
  readonly #options: HandlerSinkOptions;
  readonly #permits: Permits;
  /** The attempt under way for each id: a second one waits for it, then goes by the record. */
  readonly #running = new Map<string, Promise<CommitOutcome>>();
  readonly #attempted = new Set<string>();
  /**
   * How to end each call under way: a shutdown does not wait for handlers past its grace period.
   * A set, not an AbortSignal's listeners: adding and removing one per call was measurable.
   */
  readonly #underWay = new Set<(err: Error) => void>();
  #interrupted: Error | undefined;

  constructor(options: HandlerSinkOptions) {
    this.#options = options;
    this.#permits = new Permits(options.maxInFlight);
  }

  /** A file OFFER: confirmed at once if its id was taken, else accepted from 0 (nothing is kept to resume). */
  async open(offer: ValidOffer, peer: string): Promise<OpenResult> {
    const refused = unsupported(offer);
    if (refused !== undefined)
      return { decision: { type: 'reject', code: RejectCode.Refused, reason: refused } };
    const id = offer.id.toString('hex');
    await this.#running.get(id)?.catch(() => {});
    const taken = await this.#options.dedup.get(id);
    if (taken !== undefined && taken.size === offer.size && taken.name === offer.name)
      return { decision: { type: 'confirmed', size: taken.size, hash: taken.hash } };
    // A query (a dry run) learns that the item would be taken; the handler is not called.
    if (offer.query) return { decision: { type: 'accept', offset: 0, prefixHash: createHasher().digest() } };
    return {
      decision: { type: 'accept', offset: 0, prefixHash: createHasher().digest() },
      writer: this.take(offer, peer),
    };
  }

  take(offer: ValidOffer, peer: string): ItemWriter {
    const intake = new Intake(offer.size);
    const id = offer.id.toString('hex');
    const previous = this.#running.get(id);
    const outcome = (async () => {
      await previous?.catch(() => {});
      return this.#attempt(id, offer, peer, intake);
    })();
    this.#running.set(id, outcome);
    void outcome.finally(() => {
      if (this.#running.get(id) === outcome) this.#running.delete(id);
    });
    return new HandlerWriter(offer, intake, outcome);
  }

  async #attempt(id: string, offer: ValidOffer, peer: string, intake: Intake): Promise<CommitOutcome> {
    try {
      const taken = await this.#options.dedup.get(id);
      if (taken !== undefined) {
        intake.release();
        const hash = await intake.verified;
        if (taken.size !== offer.size || taken.hash !== hash) {
          const reason = 'this id was taken earlier for other content';
          return { type: 'reject', code: RejectCode.Exists, reason };
        }
        return { type: 'confirmed', hash, reply: taken.reply, duplicate: true };
      }
      await this.#permits.acquire();
      let value: unknown;
      try {
        value = await this.#call(id, offer, peer, intake);
      } finally {
        intake.release();
        this.#permits.release();
      }
      const hash = await intake.verified;
      const reply = replyBytes(value);
      try {
        await this.#options.dedup.put(id, { name: offer.name, size: offer.size, hash, reply });
      } catch (err) {
        const reason = `receiver could not record the item: ${errorMessage(err)}`;
        return { type: 'reject', code: RejectCode.ReceiverIo, reason };
      }
      this.#attempted.delete(id);
      return { type: 'confirmed', hash, reply };
    } catch (err) {
      return failure(err);
    }
  }

  /** One call of the handler, within its deadline. */
  async #call(id: string, offer: ValidOffer, peer: string, intake: Intake): Promise<unknown> {
    const redelivered = this.#attempted.has(id);
    this.#attempted.add(id);
    if (this.#attempted.size > MAX_ATTEMPTED)
      this.#attempted.delete(this.#attempted.values().next().value as string);
    const { timeoutMs, handler } = this.#options;
    const abort = new LazyAbort();
    intake.verified.catch((err: Error) => abort.abort(err));
    let timer: NodeJS.Timeout | undefined;
    let giveUp: (err: Error) => void = () => {};
    const deadline = new Promise<never>((_, reject) => {
      giveUp = (err: Error) => {
        abort.abort(err);
        reject(err);
      };
      timer = setTimeout(
        () => giveUp(new Error(`the handler did not finish within ${timeoutMs / 1000} s`)),
        timeoutMs,
      );
    });
    if (this.#interrupted !== undefined) giveUp(this.#interrupted);
    this.#underWay.add(giveUp);
    const item: HandlerItem = {
      id: offer.message?.key ?? id,
      name: offer.name,
      meta: Object.fromEntries(offer.message?.meta ?? []),
      size: offer.size,
      peer,
      redelivered,
      get signal() {
        return abort.signal;
      },
      bytes: () => intake.bytes(),
      stream: () => intake.stream(),
    };
    try {
      return await Promise.race([Promise.resolve().then(() => handler(item)), deadline]);
    } finally {
      clearTimeout(timer);
      this.#underWay.delete(giveUp);
    }
  }

  interrupt(): void {
    this.#interrupted ??= new Error('the receiver shut down before the handler finished');
    for (const giveUp of this.#underWay) giveUp(this.#interrupted);
  }

  async close(): Promise<void> {
    await this.#options.dedup.close();
  }
}
