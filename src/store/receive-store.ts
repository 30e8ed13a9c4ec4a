// The receiver's durable state inside DIR/.ackship (PROTOCOL.md §7): partial files named by
// transfer id, kept for resume; the journal of confirmed ids; and, while an item is under way,
// the claim on its id that keeps a second connection from receiving it at the same time.
import { access, mkdir, readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { createHasher } from '../hash.js';
import { RejectCode } from '../protocol/constants.js';
import { STATE_DIR_NAME } from '../protocol/names.js';
import type { Payload } from '../protocol/payload.js';
import type { CommitOutcome, OfferDecision, ValidOffer } from '../protocol/receiver-machine.js';
import { type Claim, Claims } from './claims.js';
import { DirLock } from './dir-lock.js';
import { FilePermits } from './file-permits.js';
import { FreeSpace } from './free-space.js';
import { fsyncDir } from './fsync-dir.js';
import { GroupCommit } from './group-commit.js';
import {
  errorMessage,
  type ItemSink,
  type ItemWriter,
  ioRejectCode,
  journalRecord,
  type OpenResult,
  RefusingWriter,
  writeAndCommit,
} from './item-writer.js';
import { ConfirmedJournal, type ConfirmedRecord } from './journal.js';
import { type PartContext, PartWriter, syncedRecordPath } from './part-writer.js';
import { type AlreadyThere, type Placement, PlacementRefused } from './placement.js';

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** A v2 directory item: no data; committed by journalling it and creating the directory. */
class DirectoryWriter implements ItemWriter {
  readonly #journal: ConfirmedJournal;
  readonly #placement: Placement;
  readonly #offer: ValidOffer;
  onTakeover: () => void = () => {};
  onDurable: (offset: number) => void = () => {};

  constructor(journal: ConfirmedJournal, placement: Placement, offer: ValidOffer) {
    this.#journal = journal;
    this.#placement = placement;
    this.#offer = offer;
  }

  get name(): string {
    return this.#offer.name;
  }

  get size(): number {
    return 0;
  }

  async write(): Promise<void> {
    throw new Error('a directory item carries no data');
  }

  async commit(expected: bigint): Promise<CommitOutcome> {
    const empty = createHasher().digest();
    if (expected !== empty) {
      return {
        type: 'reject',
        code: RejectCode.Checksum,
        reason: 'a directory item must end with the hash of nothing',
      };
    }
    try {
      await this.#journal.append(journalRecord(this.#offer, 0, empty));
      await this.#placement.makeDirectory(this.#offer);
      return { type: 'confirmed', hash: empty };
    } catch (err) {
      if (err instanceof PlacementRefused)
        return { type: 'reject', code: err.rejectCode, reason: err.message };
      return {
        type: 'reject',
        code: RejectCode.ReceiverIo,
        reason: `receiver could not create the directory: ${errorMessage(err)}`,
      };
    }
  }

  async abandon(): Promise<void> {}
}

/**
 * A file item whose name already holds a file of its size (a re-run of a send that got through,
 * PROTOCOL.md §7.3): ACCEPTed at its full length with the hash of what is there. A sender whose
 * bytes are the same sends only its END, and the item is confirmed without a byte moving; one
 * whose bytes differ starts over, and meets "exists" as it always did, or with --overwrite is
 * received into a part like any other item (`startOver` opens it).
 */
class AlreadyThereWriter implements ItemWriter {
  readonly #offer: ValidOffer;
  readonly #there: AlreadyThere;
  readonly #startOver: (() => Promise<ItemWriter>) | undefined;
  /** Where the data goes once a sender with other bytes started over (--overwrite). */
  #part: Promise<ItemWriter> | undefined;
  onTakeover: () => void = () => {};
  onDurable: (offset: number) => void = () => {};

  constructor(offer: ValidOffer, there: AlreadyThere, startOver: (() => Promise<ItemWriter>) | undefined) {
    this.#offer = offer;
    this.#there = there;
    this.#startOver = startOver;
  }

  get name(): string {
    return this.#offer.name;
  }

  get size(): number {
    return this.#offer.size;
  }

  #differs(): PlacementRefused {
    return new PlacementRefused(
      RejectCode.Exists,
      `${this.#offer.name} exists with other bytes (the receiver runs without --overwrite)`,
    );
  }

  /** Data at all means the sender's bytes differ from what is there: it started over. */
  async write(offset: number, payload: Payload, truncate: boolean): Promise<void> {
    if (this.#startOver === undefined) throw this.#differs();
    this.#part ??= this.#startOver();
    await (await this.#part).write(offset, payload, truncate);
  }

  async commit(expected: bigint): Promise<CommitOutcome> {
    if (this.#part !== undefined) return (await this.#part).commit(expected);
    const refused = this.#differs();
    if (expected !== this.#there.hash)
      return { type: 'reject', code: refused.rejectCode, reason: refused.message };
    try {
      // It must still be the file hashed at the OFFER, and durable, when confirmed.
      if (!(await this.#there.confirm()))
        return {
          type: 'reject',
          code: RejectCode.ReceiverIo,
          reason: `${this.#offer.name} changed meanwhile`,
        };
      // Not journalled: a retry of the id finds it here again, and a re-run of a large tree
      // does not grow the journal by a record per file.
      return { type: 'confirmed', hash: expected };
    } catch (err) {
      return {
        type: 'reject',
        code: ioRejectCode(err),
        reason: `receiver could not confirm the item: ${errorMessage(err)}`,
      };
    }
  }

  async abandon(discard?: boolean): Promise<void> {
    await (await this.#part?.catch(() => undefined))?.abandon(discard);
  }
}

/** An accepted item's writer while it holds its id's claim: released when the item settles. */
class ClaimedWriter implements ItemWriter {
  readonly #inner: ItemWriter;
  readonly #claim: Claim;
  readonly #settled: () => void;
  /** Taken over before its session set `onTakeover`: it is told the moment it does. */
  #takenOver = false;

  constructor(inner: ItemWriter, claim: Claim, settled: () => void) {
    this.#inner = inner;
    this.#claim = claim;
    this.#settled = settled;
    // While its data comes in, a retry of the same item on another connection may take it over.
    claim.setHolder({
      takeOver: async () => {
        this.#takenOver = true;
        this.#inner.onTakeover();
        await this.abandon();
      },
    });
  }

  get name(): string {
    return this.#inner.name;
  }

  get size(): number {
    return this.#inner.size;
  }

  set onTakeover(callback: () => void) {
    this.#inner.onTakeover = callback;
    if (this.#takenOver) callback();
  }

  get onTakeover(): () => void {
    return this.#inner.onTakeover;
  }

  set onDurable(callback: (offset: number) => void) {
    this.#inner.onDurable = callback;
  }

  get onDurable(): (offset: number) => void {
    return this.#inner.onDurable;
  }

  write(offset: number, payload: Payload, truncate: boolean): Promise<void> {
    return this.#inner.write(offset, payload, truncate);
  }

  /** A commit is never taken over: a second OFFER of the id waits for its outcome. */
  async commit(expected: bigint): Promise<CommitOutcome> {
    this.#claim.setHolder(undefined);
    try {
      return await this.#inner.commit(expected);
    } finally {
      this.#release();
    }
  }

  /** As commit(): the claim's holder goes before the one DATA is written. */
  async writeAndCommit(payload: Payload, truncate: boolean, expected: bigint): Promise<CommitOutcome> {
    this.#claim.setHolder(undefined);
    try {
      return await writeAndCommit(this.#inner, { payload, truncate }, expected);
    } finally {
      this.#release();
    }
  }

  async abandon(discard?: boolean): Promise<void> {
    this.#claim.setHolder(undefined);
    try {
      await this.#inner.abandon(discard);
    } finally {
      this.#release();
    }
  }

  #release(): void {
    this.#claim.release();
    this.#settled();
  }
}

async function makeDir(path: string): Promise<void> {
  await mkdir(path, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
}

/** Partial files open at once, over all connections: bounds the receiver's file descriptors. */
const MAX_OPEN_PARTS = 256;

/** A part file's name is its id; its stream's synced-offset record is beside it. */
function partId(entry: string): string {
  return entry.endsWith('.synced') ? entry.slice(0, -'.synced'.length) : entry;
}

export class ReceiveStore implements ItemSink {
  readonly journal: ConfirmedJournal;
  readonly placement: Placement;
  readonly #partsDir: string;
  readonly #claims = new Claims();
  /** Writers of accepted items not yet settled, abandoned (kept resumable) on close. */
  readonly #writers = new Set<ItemWriter>();
  readonly #parts: PartContext;

  readonly #lock: DirLock;

  private constructor(journal: ConfirmedJournal, placement: Placement, partsDir: string, lock: DirLock) {
    this.#lock = lock;
    this.journal = journal;
    this.placement = placement;
    this.#partsDir = partsDir;
    const partsDirSync = new GroupCommit(() => fsyncDir(partsDir));
    this.#parts = {
      journal,
      placement,
      permits: new FilePermits(MAX_OPEN_PARTS),
      space: new FreeSpace(partsDir),
      syncPartsDir: () => partsDirSync.run(),
    };
  }

  /**
   * Opens (creating where needed) the state directory inside `dir`, which this receiver then
   * holds alone. `dedupWindowMs`: how long a confirmed id is answered as such (§7).
   */
  static async open(dir: string, placement: Placement, dedupWindowMs: number): Promise<ReceiveStore> {
    const stateDir = join(dir, STATE_DIR_NAME);
    const partsDir = join(stateDir, 'parts');
    // One level at a time: a recursive mkdir reports a read-only filesystem as ENOENT.
    for (const path of [stateDir, partsDir]) await makeDir(path);
    const lock = await DirLock.acquire(stateDir, dir);
    try {
      const journal = await ConfirmedJournal.open(join(stateDir, 'confirmed.jsonl'), dedupWindowMs);
      // The entries just made (parts/, the journal) must outlive a power cut like what they hold.
      await fsyncDir(stateDir);
      await fsyncDir(dir);
      return new ReceiveStore(journal, placement, partsDir, lock);
    } catch (err) {
      await lock.release();
      throw err;
    }
  }

  /** The part of transfer id `id` (hex), joined by hand: path.join normalizes, making garbage per item. */
  #partPath(id: string): string {
    return `${this.#partsDir}/${id}`;
  }

  /** §6: the answer to an OFFER, with the writer that takes its data when accepted. */
  async open(offer: ValidOffer): Promise<OpenResult> {
    if (offer.query) return { decision: await this.#query(offer) };
    const claim = await this.#claims.claim(offer);
    if (claim === undefined) {
      return {
        decision: {
          type: 'reject',
          code: RejectCode.Exists,
          reason: 'this transfer id is being received for another item',
        },
      };
    }
    const result = await this.#decide(offer);
    if (result.writer === undefined) {
      claim.release();
      return result;
    }
    const writer: ItemWriter = new ClaimedWriter(result.writer, claim, () => this.#writers.delete(writer));
    this.#writers.add(writer);
    return { decision: result.decision, writer };
  }

  /** Files and streams only: a message needs an application to take it (`serve({ handler })`). */
  take(offer: ValidOffer): ItemWriter {
    const reason =
      'this receiver stores files; it takes no messages (it runs with --out, not --exec or a handler)';
    return new RefusingWriter(offer, RejectCode.Refused, reason);
  }

  /** The answer to an OFFER whose id this call holds. */
  async #decide(offer: ValidOffer): Promise<OpenResult> {
    const id = offer.id.toString('hex');
    const path = this.#partPath(id);
    try {
      const confirmed = await this.journal.get(id);
      if (confirmed !== undefined) {
        const again = await this.#confirmAgain(confirmed, offer, path);
        if (again !== undefined) return { decision: again };
      }
      if (offer.stream && this.placement.openStream !== undefined)
        return await this.placement.openStream(offer, this.journal);
      const there = await this.placement.admit(offer);
      if (there !== undefined) {
        const startOver = there.replaceable
          ? async () => (await PartWriter.open(this.#parts, offer, path)).writer
          : undefined;
        const writer = new AlreadyThereWriter(offer, there, startOver);
        return { decision: { type: 'accept', offset: offer.size, prefixHash: there.hash }, writer };
      }
      if (offer.directory) {
        const writer = new DirectoryWriter(this.journal, this.placement, offer);
        return { decision: { type: 'accept', offset: 0, prefixHash: createHasher().digest() }, writer };
      }
      return await PartWriter.open(this.#parts, offer, path);
    } catch (err) {
      if (err instanceof PlacementRefused)
        return { decision: { type: 'reject', code: err.rejectCode, reason: err.message } };
      return {
        decision: {
          type: 'reject',
          code: RejectCode.ReceiverIo,
          reason: `receiver could not open the item: ${errorMessage(err)}`,
        },
      };
    }
  }

  /**
   * v4 (§4.1): what an OFFER of this item would be answered, without taking its id, creating a
   * part, or placing anything: a dry run asks it before any data moves.
   */
  async #query(offer: ValidOffer): Promise<OfferDecision> {
    const id = offer.id.toString('hex');
    try {
      const confirmed = await this.journal.get(id);
      if (confirmed !== undefined) {
        const again = await this.#confirmAgain(confirmed, offer, this.#partPath(id), false);
        if (again !== undefined) return again;
      }
      const there = offer.stream ? undefined : await this.placement.admit(offer);
      if (there !== undefined) return { type: 'accept', offset: offer.size, prefixHash: there.hash };
      return { type: 'accept', offset: 0, prefixHash: createHasher().digest() };
    } catch (err) {
      if (err instanceof PlacementRefused)
        return { type: 'reject', code: err.rejectCode, reason: err.message };
      const reason = `receiver could not check the item: ${errorMessage(err)}`;
      return { type: 'reject', code: RejectCode.ReceiverIo, reason };
    }
  }

  /**
   * Exactly once (§7): a confirmed id is confirmed again, finishing a placement a crash cut
   * short (unless `finish` is false), but only when the final name really holds the journalled item. When it does not (the
   * file was removed, or never reached the disk), undefined: the item is received anew.
   */
  async #confirmAgain(
    record: ConfirmedRecord,
    offer: ValidOffer,
    path: string,
    finish = true,
  ): Promise<OfferDecision | undefined> {
    if ((!offer.stream && record.size !== offer.size) || record.name !== offer.name) {
      return {
        type: 'reject',
        code: RejectCode.Exists,
        reason: 'this transfer id was confirmed earlier for another item',
      };
    }
    const hash = BigInt(`0x${record.hash}`);
    // `finish`: complete a placement a crash cut short; a query only says that it would.
    if (offer.directory) {
      if (finish) await this.placement.makeDirectory(offer);
    } else if (await exists(path)) {
      if (finish) await this.placement.place(path, offer);
    } else if (!(await this.placement.holds(offer, record.size, hash))) return undefined;
    return { type: 'confirmed', size: record.size, hash };
  }

  /**
   * Deletes the partials nobody wrote to for `ttlMs`: senders that never came back. Skips parts
   * in use, and parts of journalled ids, whose retry will still place them (§7).
   */
  async sweep(ttlMs: number): Promise<number> {
    let removed = 0;
    for (const entry of await readdir(this.#partsDir)) {
      if (entry.endsWith('.synced')) continue; // removed with its part
      const path = join(this.#partsDir, entry);
      const info = await stat(path).catch(() => undefined);
      if (info === undefined || Date.now() - info.mtimeMs <= ttlMs) continue;
      // Checked right before the unlink, with no await between: an OFFER that began meanwhile is seen.
      if (this.#claims.has(partId(entry)) || this.journal.has(entry)) continue;
      await unlink(path).catch(() => {});
      await unlink(syncedRecordPath(path)).catch(() => {});
      removed++;
    }
    return removed;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#writers].map((w) => w.abandon()));
    await this.journal.close();
    await this.#lock.release();
  }
}
