// `--out -`: the receiver writes one item to stdout. A file (or, with --spool, a stream) is
// copied out whole once it was verified and made durable. A v3 stream is written out as it
// arrives, each chunk only after its own checksum passed, in order and exactly once across
// reconnects; a slow reader of stdout slows the sender down instead of filling memory.
import { createReadStream } from 'node:fs';
import { unlink } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createHasher, type Hasher, hashHex } from '../hash.js';
import { RejectCode } from '../protocol/constants.js';
import { type Payload, payloadLength, payloadParts } from '../protocol/payload.js';
import type { CommitOutcome, ValidOffer } from '../protocol/receiver-machine.js';
import type { ItemWriter, OpenResult } from './item-writer.js';
import type { ConfirmedJournal } from './journal.js';
import { type PlacedItem, type Placement, PlacementRefused } from './placement.js';

/** How often a writer blocked on a slow stdout repeats its last ACK, so the sender does not time out. */
const KEEPALIVE_MS = 5000;

/** What the one stream written to stdout has reached, kept across its connections. */
interface StreamState {
  readonly offer: ValidOffer;
  emitted: number;
  readonly hasher: Hasher;
  writer: StdoutStreamWriter | undefined;
  /** Set once the stream cannot go on: stdout failed, or its TRAILER did not match. */
  failure: string | undefined;
}

export class StdoutPlacement implements Placement {
  readonly #out: Writable;
  /** The transfer id that has stdout (placed, or streaming), once one does: stdout takes one item. */
  #owner: Buffer | undefined;
  #stream: StreamState | undefined;

  /** `streaming`: write v3 streams out as they arrive; else they are spooled and copied like files. */
  constructor(out: Writable, streaming: boolean) {
    this.#out = out;
    if (!streaming) this.openStream = undefined;
  }

  /** Bytes written to stdout so far. */
  get bytesOut(): number {
    return this.#stream?.emitted ?? 0;
  }

  async check(item: PlacedItem): Promise<void> {
    if (item.directory)
      throw new PlacementRefused(RejectCode.BadName, 'a directory cannot be written to stdout');
    if (this.#owner !== undefined && !this.#owner.equals(item.id))
      throw new PlacementRefused(RejectCode.Exists, 'the receiver writes one item to stdout and has it');
  }

  async makeDirectory(item: PlacedItem): Promise<void> {
    await this.check(item);
  }

  async place(partPath: string, item: PlacedItem): Promise<void> {
    await this.check(item);
    if (this.#owner !== undefined) return; // a retry of the item stdout already has
    this.#owner = item.id;
    await pipeline(createReadStream(partPath, { highWaterMark: 1024 * 1024 }), this.#out, { end: false });
    await unlink(partPath);
  }

  /** What stdout had before this receiver started is not known: nothing is already there. */
  /** Nothing is ever already there: what was written out cannot be read back. */
  async admit(offer: ValidOffer): Promise<undefined> {
    await this.check(offer);
  }

  /** stdout holds an item once it was written out; what was written cannot be read back. */
  async holds(item: PlacedItem): Promise<boolean> {
    return this.#owner?.equals(item.id) === true;
  }

  /** v3: accepts a stream at what stdout already has, taking it over from an older connection. */
  async openStream?(offer: ValidOffer, journal: ConfirmedJournal): Promise<OpenResult> {
    await this.check(offer);
    this.#owner = offer.id;
    this.#stream ??= { offer, emitted: 0, hasher: createHasher(), writer: undefined, failure: undefined };
    const state = this.#stream;
    if (state.failure !== undefined) throw new PlacementRefused(RejectCode.OutputFailed, state.failure);
    await state.writer?.retire();
    const writer = new StdoutStreamWriter(state, this.#out, journal);
    state.writer = writer;
    return { decision: { type: 'accept', offset: state.emitted, prefixHash: state.hasher.digest() }, writer };
  }
}

class StdoutStreamWriter implements ItemWriter {
  readonly #state: StreamState;
  readonly #out: Writable;
  readonly #journal: ConfirmedJournal;
  /** Resolves when everything handed to stdout so far was written (or failed). */
  #flushed: Promise<void> = Promise.resolve();
  #writing: Promise<void> = Promise.resolve();
  #durable: number;
  #retired = false;
  onTakeover: () => void = () => {};
  onDurable: (offset: number) => void = () => {};

  constructor(state: StreamState, out: Writable, journal: ConfirmedJournal) {
    this.#state = state;
    this.#out = out;
    this.#journal = journal;
    this.#durable = state.emitted;
  }

  get name(): string {
    return this.#state.offer.name;
  }

  get size(): number {
    return this.#state.emitted;
  }

  /** A newer connection took the stream over: let our last write finish, then refuse more. */
  async retire(): Promise<void> {
    this.#retired = true;
    this.onTakeover();
    await this.#writing.catch(() => {});
  }

  write(_offset: number, payload: Payload): Promise<void> {
    this.#writing = this.#write(payload);
    return this.#writing;
  }

  async #write(payload: Payload): Promise<void> {
    const state = this.#state;
    if (this.#retired) throw new Error('a newer connection took the stream over');
    if (state.failure !== undefined) throw new PlacementRefused(RejectCode.OutputFailed, state.failure);
    // Counted as emitted as soon as stdout has the bytes: a resume must never write them again.
    const parts = payloadParts(payload);
    const length = payloadLength(payload);
    for (const part of parts) state.hasher.update(part);
    state.emitted += length;
    const end = state.emitted;
    const flushed = new Promise<void>((resolve, reject) => {
      // In order: the last part's callback comes after every earlier part's write.
      for (const part of parts.slice(0, -1)) this.#out.write(part);
      this.#out.write(parts.at(-1) ?? Buffer.alloc(0), (err) => (err ? reject(err) : resolve()));
    });
    this.#flushed = flushed.then(() => {
      this.#durable = end;
      this.onDurable(end);
    });
    this.#flushed.catch(() => {}); // a failure is seen by the next write or the commit
    if (!this.#out.writableNeedDrain) return;
    // stdout is behind: wait, so that its reader's pace reaches the sender through TCP, and keep
    // the sender from taking the silence for a dead receiver.
    const keepalive = setInterval(() => this.onDurable(this.#durable), KEEPALIVE_MS);
    try {
      await Promise.race([this.#flushed, drained(this.#out)]);
    } catch (err) {
      state.failure = `stdout failed after ${state.emitted - length} bytes: ${(err as Error).message}`;
      throw new PlacementRefused(RejectCode.OutputFailed, state.failure);
    } finally {
      clearInterval(keepalive);
    }
  }

  async commit(expected: bigint): Promise<CommitOutcome> {
    const state = this.#state;
    try {
      await this.#writing;
      await this.#flushed;
    } catch {
      return { type: 'reject', code: RejectCode.OutputFailed, reason: state.failure ?? 'stdout failed' };
    }
    const hash = state.hasher.digest();
    if (hash !== expected) {
      state.failure =
        `stream checksum mismatch after ${state.emitted} bytes were written to stdout: ` +
        `received xxh64 ${hashHex(hash)}, sender declared ${hashHex(expected)}`;
      return { type: 'reject', code: RejectCode.StreamMismatch, reason: state.failure };
    }
    const { offer } = state;
    await this.#journal.append({
      id: offer.id.toString('hex'),
      size: state.emitted,
      hash: hashHex(hash),
      name: offer.name,
    });
    return { type: 'confirmed', hash };
  }

  async abandon(): Promise<void> {}
}

/** Resolves once `out` has room again. */
function drained(out: Writable): Promise<void> {
  return new Promise((resolve) => out.once('drain', resolve));
}
