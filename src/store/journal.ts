// The receiver's record of confirmed transfer ids (PROTOCOL.md §7): one JSON object per line,
// appended and fsynced before an item is placed, loaded at start so that a retry of a
// confirmed item is answered with the confirmation again, also after a restart.

import type { FileHandle } from 'node:fs/promises';
import { open, readFile } from 'node:fs/promises';
import { GroupCommit } from './group-commit.js';

export interface ConfirmedRecord {
  id: string;
  size: number;
  hash: string;
  name: string;
}

function parseRecord(line: string): ConfirmedRecord | undefined {
  try {
    const r = JSON.parse(line) as ConfirmedRecord;
    return typeof r.id === 'string' && typeof r.size === 'number' && typeof r.hash === 'string'
      ? r
      : undefined;
  } catch {
    return undefined; // a torn last line from a crash mid-append: that item was never confirmed
  }
}

export class ConfirmedJournal {
  readonly #records: Map<string, ConfirmedRecord>;
  readonly #file: FileHandle;
  /** Lines waiting for the next group write. */
  #pending: ConfirmedRecord[] = [];
  /** A failed write may have left a torn line: the next one starts on a fresh line. */
  #torn = false;
  readonly #flush = new GroupCommit(() => this.#writePending());

  private constructor(records: Map<string, ConfirmedRecord>, file: FileHandle) {
    this.#records = records;
    this.#file = file;
  }

  static async open(path: string): Promise<ConfirmedJournal> {
    const records = new Map<string, ConfirmedRecord>();
    const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return '';
      throw err;
    });
    for (const line of text.split('\n')) {
      const record = line && parseRecord(line);
      if (record) records.set(record.id, record);
    }
    // A torn line must not glue itself to the next record.
    const file = await open(path, 'a', 0o600);
    if (text.length > 0 && !text.endsWith('\n')) await file.write('\n');
    return new ConfirmedJournal(records, file);
  }

  get(id: string): ConfirmedRecord | undefined {
    return this.#records.get(id);
  }

  /** Resolves once `record` is written and fsynced, together with the others appended meanwhile. */
  async append(record: ConfirmedRecord): Promise<void> {
    this.#pending.push(record);
    await this.#flush.run();
  }

  async close(): Promise<void> {
    await this.#flush.run().catch(() => {});
    await this.#file.close();
  }

  /** One write and one fsync for every line appended since the last run. */
  async #writePending(): Promise<void> {
    const batch = this.#pending;
    this.#pending = [];
    if (batch.length === 0) return;
    const text = batch.map((r) => `${JSON.stringify(r)}\n`).join('');
    try {
      await this.#file.write(this.#torn ? `\n${text}` : text);
      await this.#file.sync();
      this.#torn = false;
    } catch (err) {
      this.#torn = true;
      throw err;
    }
    for (const record of batch) this.#records.set(record.id, record);
  }
}
