// The receiver's durable state inside DIR/.ackship (PROTOCOL.md §7): partial files named by
// transfer id, kept for resume, and the journal of confirmed ids.

import { constants } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, stat, statfs, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { createHasher, type Hasher, hashFilePrefix, hashHex } from '../hash.js';
import { isRetryableReject, RejectCode } from '../protocol/constants.js';
import { STATE_DIR_NAME } from '../protocol/names.js';
import type { CommitOutcome, OfferDecision, ValidOffer } from '../protocol/receiver-machine.js';
import { Semaphore } from './group-commit.js';
import { ConfirmedJournal, type ConfirmedRecord } from './journal.js';
import { type Placement, PlacementRefused } from './placement.js';

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Bytes of one item being written at once: enough to keep the disk busy, bounded in memory. */
const MAX_WRITING = 8 * 1024 * 1024;

async function writeAt(file: FileHandle, payload: Buffer, offset: number): Promise<void> {
  let at = 0;
  while (at < payload.length) {
    const { bytesWritten } = await file.write(payload, at, payload.length - at, offset + at);
    at += bytesWritten;
  }
}

/** A full disk is "no space" (not retryable); any other write failure may pass. */
export function ioRejectCode(err: unknown): RejectCode {
  if (err instanceof PlacementRefused) return err.rejectCode;
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOSPC' || code === 'EDQUOT' ? RejectCode.NoSpace : RejectCode.ReceiverIo;
}

/** Where an accepted item's data goes until it is committed. */
export interface ItemWriter {
  readonly name: string;
  readonly size: number;
  /** Called when another connection takes this transfer id over. */
  onTakeover: () => void;
  /** v3 streams: called once the bytes before `offset` are durable (or out on stdout). */
  onDurable: (offset: number) => void;
  write(offset: number, payload: Buffer, truncate: boolean): Promise<void>;
  /** §7: verify, make durable, journal, place; only a 'confirmed' outcome may be confirmed. */
  commit(expected: bigint): Promise<CommitOutcome>;
  /** The connection is gone: keep what is durable for a resume, unless told to `discard` it. */
  abandon(discard?: boolean): Promise<void>;
}

/** A v2 directory item: no data; committed by journalling it and creating the directory. */
class DirectoryWriter implements ItemWriter {
  readonly #store: ReceiveStore;
  readonly #offer: ValidOffer;
  onTakeover: () => void = () => {};
  onDurable: (offset: number) => void = () => {};

  constructor(store: ReceiveStore, offer: ValidOffer) {
    this.#store = store;
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
      await this.#store.journal.append(journalRecord(this.#offer, 0, empty));
      await this.#store.placement.makeDirectory(this.#offer);
      return { type: 'confirmed', hash: empty };
    } catch (err) {
      if (err instanceof PlacementRefused)
        return { type: 'reject', code: err.rejectCode, reason: err.message };
      return {
        type: 'reject',
        code: RejectCode.ReceiverIo,
        reason: `receiver could not create the directory: ${message(err)}`,
      };
    }
  }

  async abandon(): Promise<void> {}
}

function journalRecord(offer: ValidOffer, size: number, hash: bigint): ConfirmedRecord {
  return { id: offer.id.toString('hex'), size, hash: hashHex(hash), name: offer.name };
}

/**
 * An accepted item's partial file, written at increasing offsets and hashed as it grows. For a
 * v3 stream it also fsyncs as it goes and reports each durable offset, one fsync after another.
 */
export class PartWriter implements ItemWriter {
  readonly #store: ReceiveStore;
  readonly #offer: ValidOffer;
  readonly #path: string;
  readonly #file: FileHandle;
  #hasher: Hasher;
  #closed: Promise<void> | undefined;
  readonly #writing = new Set<Promise<void>>();
  #writingBytes = 0;
  #failure: unknown;
  /** Bytes in the file once the writes under way are done. */
  #length: number;
  /** Streams: bytes known durable, and the fsync loop when one runs. */
  #synced: number;
  #syncing: Promise<void> | undefined;
  onTakeover: () => void = () => {};
  onDurable: (offset: number) => void = () => {};

  constructor(
    store: ReceiveStore,
    offer: ValidOffer,
    path: string,
    file: FileHandle,
    hasher: Hasher,
    held: number,
  ) {
    this.#store = store;
    this.#offer = offer;
    this.#path = path;
    this.#file = file;
    this.#hasher = hasher;
    this.#length = held;
    this.#synced = held;
  }

  get name(): string {
    return this.#offer.name;
  }

  get size(): number {
    return this.#offer.stream ? this.#length : this.#offer.size;
  }

  /**
   * Hashes `payload` (in order, here) and starts writing it at `offset`; resolves while fewer
   * than MAX_WRITING bytes are being written, so the disk works while the socket is read.
   * Throws the first failure of any write.
   */
  async write(offset: number, payload: Buffer, truncate: boolean): Promise<void> {
    if (truncate) {
      // The sender found our prefix differs from its bytes: start over.
      await this.#settled();
      await this.#file.truncate(0);
      this.#hasher = createHasher();
      this.#length = 0;
    }
    this.#hasher.update(payload);
    this.#length = Math.max(this.#length, offset + payload.length);
    const writing = writeAt(this.#file, payload, offset).catch((err: unknown) => {
      this.#failure ??= err;
    });
    this.#writing.add(writing);
    this.#writingBytes += payload.length;
    void writing.finally(() => {
      this.#writing.delete(writing);
      this.#writingBytes -= payload.length;
    });
    if (this.#offer.stream) this.#syncSoon();
    while (this.#writingBytes > MAX_WRITING && this.#failure === undefined) await Promise.race(this.#writing);
    if (this.#failure !== undefined) throw this.#failure;
  }

  /**
   * Streams: fsyncs what was written and reports it durable, over and over while data comes.
   * Each fsync covers every write started before it, so the ACKs keep pace with the disk.
   */
  #syncSoon(): void {
    this.#syncing ??= (async () => {
      while (this.#synced < this.#length && this.#failure === undefined && this.#closed === undefined) {
        const target = this.#length;
        await Promise.all(this.#writing);
        if (this.#failure !== undefined) return;
        await this.#file.datasync();
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
      const code = ioRejectCode(err);
      await this.abandon(!isRetryableReject(code));
      return { type: 'reject', code, reason: `receiver could not write the item: ${message(err)}` };
    }
    const hash = this.#hasher.digest();
    if (hash !== expected) {
      await this.abandon(true);
      return {
        type: 'reject',
        code: this.#offer.stream ? RejectCode.StreamMismatch : RejectCode.Checksum,
        reason: `checksum mismatch: received xxh64 ${hashHex(hash)}, sender declared ${hashHex(expected)}`,
      };
    }
    try {
      await this.#store.placement.check(this.#offer);
      const { mode, mtimeMs } = this.#offer;
      if (mode !== undefined) await this.#file.chmod(mode & 0o777);
      if (mtimeMs !== undefined) await this.#file.utimes(new Date(), new Date(mtimeMs));
      await this.#file.sync();
      await this.#release(false);
      await this.#store.journal.append(journalRecord(this.#offer, this.size, hash));
      await this.#store.placement.place(this.#path, this.#offer);
      return { type: 'confirmed', hash };
    } catch (err) {
      await this.#release(false);
      if (err instanceof PlacementRefused) {
        await unlink(this.#path).catch(() => {});
        return { type: 'reject', code: err.rejectCode, reason: err.message };
      }
      // The partial stays for a retry: an fsync or rename that failed today may work tomorrow.
      return {
        type: 'reject',
        code: RejectCode.ReceiverIo,
        reason: `receiver could not store the item: ${message(err)}`,
      };
    }
  }

  /** The connection is gone: keep the partial, durable, for a resume; or, with `discard`, delete it. */
  async abandon(discard = false): Promise<void> {
    await this.#release(!discard);
    if (discard) await unlink(this.#path).catch(() => {});
  }

  #release(sync: boolean): Promise<void> {
    this.#closed ??= (async () => {
      try {
        await this.#syncing;
        await Promise.all(this.#writing);
        if (sync) await this.#file.sync();
      } finally {
        await this.#file.close();
        this.#store.released(this.#offer.id, this);
      }
    })().catch(() => {});
    return this.#closed;
  }
}

export type OpenResult = { decision: OfferDecision; writer?: ItemWriter };

/** Partial files open at once, over all connections: bounds the receiver's file descriptors. */
const MAX_OPEN_PARTS = 256;

export class ReceiveStore {
  readonly journal: ConfirmedJournal;
  readonly placement: Placement;
  readonly #partsDir: string;
  readonly #active = new Map<string, PartWriter>();
  readonly #openParts = new Semaphore(MAX_OPEN_PARTS);
  /** Ids whose OFFER is being answered: their part must not be swept away meanwhile. */
  readonly #opening = new Set<string>();

  private constructor(journal: ConfirmedJournal, placement: Placement, partsDir: string) {
    this.journal = journal;
    this.placement = placement;
    this.#partsDir = partsDir;
  }

  /** Opens (creating where needed) the state directory inside `dir`. */
  static async open(dir: string, placement: Placement): Promise<ReceiveStore> {
    const stateDir = join(dir, STATE_DIR_NAME);
    const partsDir = join(stateDir, 'parts');
    await mkdir(partsDir, { recursive: true, mode: 0o700 });
    const journal = await ConfirmedJournal.open(join(stateDir, 'confirmed.jsonl'));
    return new ReceiveStore(journal, placement, partsDir);
  }

  /** §6: the answer to an OFFER, with the writer that takes its data when accepted. */
  async open(offer: ValidOffer): Promise<OpenResult> {
    const id = offer.id.toString('hex');
    const path = join(this.#partsDir, id);
    this.#opening.add(id);
    try {
      const confirmed = this.journal.get(id);
      if (confirmed !== undefined) return { decision: await this.#confirmAgain(confirmed, offer, path) };
      await this.#takeOver(id);
      if (offer.stream && this.placement.openStream !== undefined)
        return await this.placement.openStream(offer, this.journal);
      await this.placement.check(offer);
      if (offer.directory) {
        const writer = new DirectoryWriter(this, offer);
        return { decision: { type: 'accept', offset: 0, prefixHash: createHasher().digest() }, writer };
      }
      await this.#openParts.acquire();
      let file: FileHandle;
      try {
        // Read-write, created if new, never truncated: what it holds is the resume offset.
        file = await open(path, constants.O_RDWR | constants.O_CREAT, 0o600);
      } catch (err) {
        this.#openParts.release();
        throw err;
      }
      let held = 0;
      let hasher: Hasher;
      try {
        held = (await file.stat()).size;
        if (!offer.stream && held > offer.size) {
          await file.truncate(0);
          held = 0;
        }
        // A stream's length is unknown: a full disk shows when a write fails.
        if (!offer.stream) await this.#checkSpace(offer.size - held);
        hasher = createHasher();
        await hashFilePrefix(file, held, hasher);
      } catch (err) {
        await file.close();
        this.#openParts.release();
        // A part we just created holds nothing worth keeping; a resumable prefix stays.
        if (held === 0) await unlink(path).catch(() => {});
        throw err;
      }
      const writer = new PartWriter(this, offer, path, file, hasher, held);
      this.#active.set(id, writer);
      return { decision: { type: 'accept', offset: held, prefixHash: hasher.digest() }, writer };
    } catch (err) {
      if (err instanceof PlacementRefused)
        return { decision: { type: 'reject', code: err.rejectCode, reason: err.message } };
      return {
        decision: {
          type: 'reject',
          code: RejectCode.ReceiverIo,
          reason: `receiver could not open the item: ${message(err)}`,
        },
      };
    } finally {
      this.#opening.delete(id);
    }
  }

  /** Exactly once (§7): a confirmed id is confirmed again, finishing a placement a crash cut short. */
  async #confirmAgain(record: ConfirmedRecord, offer: ValidOffer, path: string): Promise<OfferDecision> {
    if ((!offer.stream && record.size !== offer.size) || record.name !== offer.name) {
      return {
        type: 'reject',
        code: RejectCode.Exists,
        reason: 'this transfer id was confirmed earlier for another item',
      };
    }
    if (offer.directory) await this.placement.makeDirectory(offer);
    else await this.placement.place(path, offer);
    return { type: 'confirmed', size: record.size, hash: BigInt(`0x${record.hash}`) };
  }

  /** A retry may arrive while the old connection still holds the id: the newest one wins. */
  async #takeOver(id: string): Promise<void> {
    const previous = this.#active.get(id);
    if (previous === undefined) return;
    previous.onTakeover();
    await previous.abandon();
  }

  async #checkSpace(needed: number): Promise<void> {
    if (needed <= 0) return;
    const fs = await statfs(this.#partsDir);
    const free = fs.bavail * fs.bsize;
    if (needed > free) {
      throw new PlacementRefused(
        RejectCode.NoSpace,
        `no space: ${needed} bytes needed, ${free} free on the receiver`,
      );
    }
  }

  /** A part's file was closed. */
  released(id: Buffer, writer: PartWriter): void {
    this.#openParts.release();
    const key = id.toString('hex');
    if (this.#active.get(key) === writer) this.#active.delete(key);
  }

  /**
   * Deletes the partials nobody wrote to for `ttlMs`: senders that never came back. Skips parts
   * in use, and parts of journalled ids, whose retry will still place them (§7).
   */
  async sweep(ttlMs: number): Promise<number> {
    let removed = 0;
    for (const id of await readdir(this.#partsDir)) {
      const info = await stat(join(this.#partsDir, id)).catch(() => undefined);
      if (info === undefined || Date.now() - info.mtimeMs <= ttlMs) continue;
      // Checked right before the unlink, with no await between: an OFFER that began meanwhile is seen.
      if (this.#active.has(id) || this.#opening.has(id) || this.journal.get(id) !== undefined) continue;
      await unlink(join(this.#partsDir, id)).catch(() => {});
      removed++;
    }
    return removed;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#active.values()].map((w) => w.abandon()));
    await this.journal.close();
  }
}
