// Which items the application has already taken, with the reply it gave (PROTOCOL.md §7.4): a
// retry within the dedup window is answered from here without calling the handler again. With
// a state directory the records are the receiver's journal, fsynced before the answer goes out,
// so they survive a crash or power cut; without one they last as long as the process.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { hashHex } from '../hash.js';
import { DirLock } from '../store/dir-lock.js';
import { fsyncDir } from '../store/fsync-dir.js';
import { ConfirmedJournal } from '../store/journal.js';

export interface TakenItem {
  name: string;
  size: number;
  hash: bigint;
  reply: Buffer;
}

export interface DedupRecords {
  get(id: string): Promise<TakenItem | undefined>;
  /** Resolves once the record would survive what the records survive. */
  put(id: string, item: TakenItem): Promise<void>;
  close(): Promise<void>;
}

/** Keys remembered by a receiver without a state directory; the oldest are forgotten first. */
const MEMORY_RECORDS = 100_000;

export class MemoryDedup implements DedupRecords {
  readonly #windowMs: number;
  readonly #records = new Map<string, { at: number; item: TakenItem }>();

  constructor(windowMs: number) {
    this.#windowMs = windowMs;
  }

  async get(id: string): Promise<TakenItem | undefined> {
    const record = this.#records.get(id);
    return record !== undefined && record.at >= Date.now() - this.#windowMs ? record.item : undefined;
  }

  async put(id: string, item: TakenItem): Promise<void> {
    this.#records.delete(id);
    this.#records.set(id, { at: Date.now(), item });
    if (this.#records.size > MEMORY_RECORDS)
      this.#records.delete(this.#records.keys().next().value as string);
  }

  async close(): Promise<void> {}
}

export class JournalDedup implements DedupRecords {
  readonly #journal: ConfirmedJournal;
  readonly #lock: DirLock;

  private constructor(journal: ConfirmedJournal, lock: DirLock) {
    this.#journal = journal;
    this.#lock = lock;
  }

  /** Opens (creating) `dir`, which this receiver then holds alone, as in `recv --out` (§7). */
  static async open(dir: string, windowMs: number): Promise<JournalDedup> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const lock = await DirLock.acquire(dir, dir);
    try {
      const journal = await ConfirmedJournal.open(join(dir, 'confirmed.jsonl'), windowMs);
      await fsyncDir(dir);
      return new JournalDedup(journal, lock);
    } catch (err) {
      await lock.release();
      throw err;
    }
  }

  async get(id: string): Promise<TakenItem | undefined> {
    const record = await this.#journal.get(id);
    if (record === undefined) return undefined;
    return {
      name: record.name,
      size: record.size,
      hash: BigInt(`0x${record.hash}`),
      reply: Buffer.from(record.reply ?? '', 'base64'),
    };
  }

  put(id: string, item: TakenItem): Promise<void> {
    return this.#journal.append({
      id,
      size: item.size,
      hash: hashHex(item.hash),
      name: item.name,
      ...(item.reply.length > 0 && { reply: item.reply.toString('base64') }),
    });
  }

  async close(): Promise<void> {
    await this.#journal.close();
    await this.#lock.release();
  }
}
