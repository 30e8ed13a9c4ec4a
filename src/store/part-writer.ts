// An accepted item's partial file in DIR/.ackship/parts, named by transfer id: written at
// increasing offsets and hashed as it grows, then verified, fsynced, journalled and placed
// (§7). Its file is opened only while it is used: the receiver's permits may close it between
// writes (file-permits.ts), and the next write reopens it.
//
// A v3 stream is also fsynced as it goes, and each durable offset is recorded beside the part
// (ID.synced: the offset and the xxHash64 of the bytes before it) before the sender is told, so
// that after a power cut the part resumes from what was really synced: the part's length alone
// says nothing, since writes completed out of order leave holes of zeros below it.
import { constants } from 'node:fs';
import { readFile, unlink } from 'node:fs/promises';
import { FdFile, NOW_MAX } from '../fd-file.js';
import { createHasher, type Hasher, hashFilePrefix, hashHex } from '../hash.js';
import { RejectCode } from '../protocol/constants.js';
import { type Payload, payloadLength, payloadParts } from '../protocol/payload.js';
import type { CommitOutcome, OfferDecision, ValidOffer } from '../protocol/receiver-machine.js';
import type { FilePermits, FileUser } from './file-permits.js';
import type { FreeSpace } from './free-space.js';
import { errorMessage, type ItemWriter, journalRecord, writeRefused } from './item-writer.js';
import type { ConfirmedJournal } from './journal.js';
import { type Placement, PlacementRefused } from './placement.js';
import { WriteQueue } from './write-queue.js';

/** Bytes of one item queued or being written: enough to keep the disk busy, bounded in memory. */
const MAX_WRITING = 8 * 1024 * 1024;

/**
 * A file's part is fdatasynced in the background each time this much more was written: without
 * it, all of a large file's writeback waited for the commit's fsync, after its last byte came.
 */
const FLUSH_AHEAD = 32 * 1024 * 1024;

/** §7.2: the synced-offset record of a stream's part: offset (u64), xxHash64 of the prefix (u64). */
const SYNCED_LEN = 16;

/** What a part writer needs of the store it belongs to. */
export interface PartContext {
  journal: ConfirmedJournal;
  placement: Placement;
  permits: FilePermits;
  space: FreeSpace;
  /** Makes new entries of the parts directory durable (an fsync shared by those asking at once). */
  syncPartsDir(): Promise<void>;
}

export function syncedRecordPath(partPath: string): string {
  return `${partPath}.synced`;
}

/** The durable offset recorded for a stream's part, or undefined when none was (or it is torn). */
async function readSynced(partPath: string): Promise<{ offset: number; hash: bigint } | undefined> {
  const bytes = await readFile(syncedRecordPath(partPath)).catch(() => undefined);
  if (bytes?.length !== SYNCED_LEN) return undefined;
  const offset = bytes.readBigUInt64BE(0);
  if (offset > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return { offset: Number(offset), hash: bytes.readBigUInt64BE(8) };
}

export class PartWriter implements ItemWriter, FileUser {
  readonly #context: PartContext;
  readonly #offer: ValidOffer;
  readonly #path: string;
  /** Open while a permit is held; undefined after an eviction, until the next use. */
  #file: FdFile | undefined;
  #reopening: Promise<void> | undefined;
  /**
   * Whether this writer's first open made the file (then it holds nothing, and needs no fstat);
   * undefined before that open.
   */
  #created: boolean | undefined;
  /** Uses of the file under way: while any runs, the file is not evicted. */
  #uses = 0;
  #hasher: Hasher = createHasher();
  /** Small writes on this thread, others through the pool: either way one at a time. */
  readonly #writes = new WriteQueue((parts, position, length) =>
    this.#use(async (file) =>
      length <= NOW_MAX ? file.writeNow(parts, position) : file.writeAll(parts, position),
    ),
  );
  #closed: Promise<void> | undefined;
  readonly #writing = new Set<Promise<void>>();
  #writingBytes = 0;
  #failure: unknown;
  /** Bytes in the file once the writes under way are done. */
  #length = 0;
  /** Streams: bytes known durable, and the fsync loop when one runs. */
  #synced = 0;
  #syncing: Promise<void> | undefined;
  /** Files: bytes written when the last background flush began, and that flush while it runs. */
  #flushedAt = 0;
  #flushing: Promise<void> | undefined;
  /** Streams: whether the synced-offset record's directory entry is known durable. */
  #recordEntrySynced = false;
  onTakeover: () => void = () => {};
  onDurable: (offset: number) => void = () => {};

  private constructor(context: PartContext, offer: ValidOffer, path: string) {
    this.#context = context;
    this.#offer = offer;
    this.#path = path;
  }

  /**
   * Opens (creating) the part of `offer` and answers the OFFER: accepted at the offset it holds
   * durably, with the hash of that prefix.
   */
  static async open(
    context: PartContext,
    offer: ValidOffer,
    path: string,
  ): Promise<{ decision: OfferDecision; writer: PartWriter }> {
    const writer = new PartWriter(context, offer, path);
    try {
      const offset = await writer.#use((file) => writer.#resumePoint(file));
      return { decision: { type: 'accept', offset, prefixHash: writer.#hasher.digest() }, writer };
    } catch (err) {
      // A part just created holds nothing worth keeping; a resumable prefix stays.
      await writer.#release(false);
      if (writer.#length === 0) await unlink(path).catch(() => {});
      throw err;
    }
  }

  /** Where the part resumes: what it durably holds, truncated to that and hashed. */
  async #resumePoint(file: FdFile): Promise<number> {
    let held = this.#created ? 0 : file.stat().size;
    if (this.#offer.stream) {
      // Only what the synced-offset record vouches for; past it there may be holes.
      const synced = await readSynced(this.#path);
      const offset = synced !== undefined && synced.offset <= held ? synced.offset : 0;
      if (held > offset) await file.truncate(offset);
      held = offset;
      await hashFilePrefix(file, held, this.#hasher);
      if (synced !== undefined && this.#hasher.digest() !== synced.hash) {
        // The prefix is not what was synced (a damaged disk): nothing of it can be vouched for.
        await file.truncate(0);
        this.#hasher = createHasher();
        held = 0;
      }
    } else {
      if (held > this.#offer.size) {
        await file.truncate(0);
        held = 0;
      }
      this.#length = held;
      // A stream's length is unknown: a full disk shows when a write fails.
      await this.#context.space.ensure(this.#offer.size - held);
      await hashFilePrefix(file, held, this.#hasher);
    }
    this.#length = held;
    this.#synced = held;
    return held;
  }

  get name(): string {
    return this.#offer.name;
  }

  get size(): number {
    return this.#offer.stream ? this.#length : this.#offer.size;
  }

  get idle(): boolean {
    return this.#uses === 0 && this.#file !== undefined && this.#reopening === undefined;
  }

  async evict(): Promise<void> {
    const file = this.#file;
    this.#file = undefined;
    try {
      file?.close();
    } catch {
      // Its writes were settled and fsynced where that mattered: nothing is lost.
    }
  }

  /** Runs `task` with the file open, reopening it (under a permit) if it was evicted. */
  async #use<T>(task: (file: FdFile) => Promise<T>): Promise<T> {
    this.#uses++;
    try {
      while (this.#file === undefined) {
        this.#reopening ??= this.#reopen().finally(() => {
          this.#reopening = undefined;
        });
        await this.#reopening;
      }
      this.#context.permits.touch(this);
      return await task(this.#file);
    } finally {
      this.#uses--;
    }
  }

  async #reopen(): Promise<void> {
    if (this.#closed !== undefined) throw new Error('the part was closed');
    await this.#context.permits.acquire(this);
    try {
      this.#file = this.#openFile();
    } catch (err) {
      this.#context.permits.release(this);
      throw err;
    }
  }

  /**
   * Read-write, created if new, never truncated: what it holds is the resume offset. The first
   * open tries to create it, as it does for almost every item: made now, it is known empty.
   */
  #openFile(): FdFile {
    const flags = constants.O_RDWR | constants.O_CREAT;
    if (this.#created === undefined) {
      this.#created = false;
      try {
        const file = FdFile.open(this.#path, flags | constants.O_EXCL);
        this.#created = true;
        return file;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
    return FdFile.open(this.#path, flags);
  }

  /**
   * Hashes `payload` (in order, here) and queues its write at `offset`; resolves while fewer
   * than MAX_WRITING bytes are queued or being written, so the disk works while the socket is read.
   * Throws the first failure of any write.
   */
  async write(offset: number, payload: Payload, truncate: boolean): Promise<void> {
    if (truncate) await this.#startOver();
    const { parts, length } = this.#take(offset, payload);
    const writing = this.#writes.add(parts, offset, length).catch((err: unknown) => {
      this.#failure ??= err;
    });
    this.#writing.add(writing);
    this.#writingBytes += length;
    void writing.finally(() => {
      this.#writing.delete(writing);
      this.#writingBytes -= length;
    });
    if (this.#offer.stream) this.#syncSoon();
    else this.#flushAhead();
    while (this.#writingBytes > MAX_WRITING && this.#failure === undefined) await Promise.race(this.#writing);
    if (this.#failure !== undefined) throw this.#failure;
  }

  /** The sender found our prefix differs from its bytes: start over. */
  async #startOver(): Promise<void> {
    await this.#settled();
    await this.#use((file) => file.truncate(0));
    this.#hasher = createHasher();
    this.#length = 0;
    this.#flushedAt = 0;
  }

  /** Hashes `payload` (in order, here) as the bytes at `offset`. */
  #take(offset: number, payload: Payload): { parts: readonly Buffer[]; length: number } {
    const parts = payloadParts(payload);
    const length = payloadLength(payload);
    for (const part of parts) this.#hasher.update(part);
    this.#length = Math.max(this.#length, offset + length);
    return { parts, length };
  }

  /** Files: starts writing back what is written so far, once FLUSH_AHEAD more has been. */
  #flushAhead(): void {
    if (this.#flushing !== undefined || this.#length - this.#flushedAt < FLUSH_AHEAD) return;
    this.#flushedAt = this.#length;
    const flushing = this.#use((file) => file.datasync())
      .catch((err: unknown) => {
        this.#failure ??= err;
      })
      .finally(() => {
        this.#writing.delete(flushing);
        this.#flushing = undefined;
      });
    this.#flushing = flushing;
    this.#writing.add(flushing);
  }

  /**
   * Streams: fsyncs what was written, records it as the durable offset and reports it, over and
   * over while data comes. Each fsync covers every write started before it, so the ACKs keep
   * pace with the disk.
   */
  #syncSoon(): void {
    this.#syncing ??= (async () => {
      while (this.#synced < this.#length && this.#failure === undefined && this.#closed === undefined) {
        // Taken together, with no await between: the hash is of exactly the bytes before target.
        const target = this.#length;
        const prefixHash = this.#hasher.digest();
        await Promise.all(this.#writing);
        if (this.#failure !== undefined) return;
        await this.#use((file) => file.datasync());
        await this.#recordSynced(target, prefixHash);
        this.#synced = target;
        this.onDurable(target);
      }
    })()
      .catch((err: unknown) => {
        this.#failure ??= err;
      })
      .finally(() => {
        this.#syncing = undefined;
      });
  }

  /** §7.2: the durable offset is on disk (with its directory entry) before anyone is told. */
  async #recordSynced(offset: number, prefixHash: bigint): Promise<void> {
    const record = Buffer.alloc(SYNCED_LEN);
    record.writeBigUInt64BE(BigInt(offset), 0);
    record.writeBigUInt64BE(prefixHash, 8);
    const file = FdFile.open(syncedRecordPath(this.#path), constants.O_WRONLY | constants.O_CREAT);
    try {
      await file.writeAll([record], 0);
      await file.datasync();
    } finally {
      file.close();
    }
    if (!this.#recordEntrySynced) {
      // The part's and the record's own entries: a resume after a power cut needs both.
      await this.#context.syncPartsDir();
      this.#recordEntrySynced = true;
    }
  }

  /** Waits for every write under way; throws the first that failed. */
  async #settled(): Promise<void> {
    await Promise.all(this.#writing);
    if (this.#failure !== undefined) throw this.#failure;
  }

  /** §7: verify, fsync, journal, place, and only then report the item confirmed. */
  async commit(expected: bigint): Promise<CommitOutcome> {
    try {
      await this.#settled();
    } catch (err) {
      // A last write can fail after the last DATA was taken (a full disk): refused for good,
      // its partial is deleted here too.
      return writeRefused(this, err);
    }
    return this.#finish(expected, undefined);
  }

  /**
   * v6 (§6.3): an eager item's one DATA and its commit together. Its bytes are verified before
   * any is written, then written, given their attributes and fsynced in one job off the event
   * loop's thread (FdFile.finish).
   */
  async writeAndCommit(payload: Payload, truncate: boolean, expected: bigint): Promise<CommitOutcome> {
    try {
      if (truncate) await this.#startOver();
    } catch (err) {
      return writeRefused(this, err);
    }
    const { parts } = this.#take(0, payload);
    return this.#finish(expected, { parts, position: 0 });
  }

  /** Verifies what was taken, writes `data` if given, and makes the item durable and placed. */
  async #finish(
    expected: bigint,
    data: { parts: readonly Buffer[]; position: number } | undefined,
  ): Promise<CommitOutcome> {
    const hash = this.#hasher.digest();
    if (hash !== expected) {
      await this.abandon(true);
      return {
        type: 'reject',
        code: this.#offer.stream ? RejectCode.StreamMismatch : RejectCode.Checksum,
        reason: `checksum mismatch: received xxh64 ${hashHex(hash)}, sender declared ${hashHex(expected)}`,
      };
    }
    const { journal, placement } = this.#context;
    try {
      await placement.check(this.#offer);
      const { mode, mtimeMs } = this.#offer;
      await this.#use(async (file) => {
        if (data !== undefined) return file.finish(data, mode, mtimeMs);
        // A large file's one fsync: not worth the worker's 6.6 MiB of RSS, nor its start.
        file.setAttributes(mode, mtimeMs);
        await file.sync();
      });
    } catch (err) {
      // The write itself failed (a full disk): as any write would.
      if ((err as NodeJS.ErrnoException).syscall === 'write') return writeRefused(this, err);
      return this.#notStored(err);
    }
    try {
      await this.#release(false);
      await journal.append(journalRecord(this.#offer, this.size, hash));
      await placement.place(this.#path, this.#offer);
      if (this.#offer.stream) await unlink(syncedRecordPath(this.#path)).catch(() => {});
      return { type: 'confirmed', hash };
    } catch (err) {
      return this.#notStored(err);
    }
  }

  /** Verified, but not stored: a placement refused is final; any other failure keeps the partial. */
  async #notStored(err: unknown): Promise<CommitOutcome> {
    await this.#release(false);
    if (err instanceof PlacementRefused) {
      await this.#discard();
      return { type: 'reject', code: err.rejectCode, reason: err.message };
    }
    // The partial stays for a retry: an fsync or rename that failed today may work tomorrow.
    return {
      type: 'reject',
      code: RejectCode.ReceiverIo,
      reason: `receiver could not store the item: ${errorMessage(err)}`,
    };
  }

  /** The connection is gone: keep the partial, durable, for a resume; or, with `discard`, delete it. */
  async abandon(discard = false): Promise<void> {
    await this.#release(!discard);
    if (discard) await this.#discard();
  }

  async #discard(): Promise<void> {
    await unlink(this.#path).catch(() => {});
    await unlink(syncedRecordPath(this.#path)).catch(() => {});
  }

  #release(sync: boolean): Promise<void> {
    this.#closed ??= (async () => {
      try {
        await this.#syncing;
        await Promise.all(this.#writing);
        if (sync && this.#file !== undefined) await this.#file.sync();
      } finally {
        await this.#reopening?.catch(() => {});
        await this.evict();
        this.#context.permits.release(this);
      }
    })().catch(() => {});
    return this.#closed;
  }
}
