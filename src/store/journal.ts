// The receiver's record of confirmed transfer ids (PROTOCOL.md §7): one JSON object per line,
// appended and fsynced before an item is placed, so that a retry of a confirmed item is
// answered with the confirmation again, also after a restart.
//
// Ids are kept for a dedup window (`recv --dedup-window`), not for ever. At start the journal
// is scanned without parsing JSON (the id and time sit at fixed places in every line this code
// writes) into a compact index of id -> line offset; a record itself is read back only when its
// id is offered again. When expired and superseded lines outnumber the live ones, the journal
// is compacted: the live lines are written beside it, fsynced, renamed over it, and the
// directory fsynced, so no record inside the window is lost at any instant.

import type { FileHandle } from 'node:fs/promises';
import { open, rename, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { GroupCommit } from './group-commit.js';
import { IdIndex } from './id-index.js';

export interface ConfirmedRecord {
  id: string;
  size: number;
  hash: string;
  name: string;
}

/** A line as written: `at` (ms since the epoch) right after the id, for the scan at start. */
interface StoredRecord extends ConfirmedRecord {
  at?: number;
}

const LINE_START = Buffer.from('{"id":"');
const ID_HEX = 32;
const AT_FIELD = Buffer.from('","at":');
const NEWLINE = Buffer.from('\n');
/** The journal is scanned in pieces of this size: its memory does not grow with the journal. */
const READ_PIECE = 1024 * 1024;
/** The longest line: a 4096-byte name, every character of it escaped at most twice over. */
const MAX_LINE = 16 * 1024;

function parseRecord(line: string): StoredRecord | undefined {
  try {
    const r = JSON.parse(line) as StoredRecord;
    return typeof r.id === 'string' &&
      /^[0-9a-f]{32}$/.test(r.id) &&
      typeof r.size === 'number' &&
      typeof r.hash === 'string' &&
      typeof r.name === 'string'
      ? r
      : undefined;
  } catch {
    return undefined; // a torn last line from a crash mid-append: that item was never confirmed
  }
}

const HEX_VALUE = new Int8Array(256).fill(-1);
for (let i = 0; i < 10; i++) HEX_VALUE[0x30 + i] = i;
for (let i = 0; i < 6; i++) HEX_VALUE[0x61 + i] = 10 + i;

/** Decodes 32 lowercase hex digits at `from` into `id`; false if they are not that. */
function decodeId(text: Buffer, from: number, id: Buffer): boolean {
  for (let i = 0; i < ID_HEX / 2; i++) {
    const hi = HEX_VALUE[text[from + 2 * i] as number] as number;
    const lo = HEX_VALUE[text[from + 2 * i + 1] as number] as number;
    if (hi < 0 || lo < 0) return false;
    id[i] = hi * 16 + lo;
  }
  return true;
}

/**
 * The id (into `id`) and time of one line, read at fixed places without parsing JSON; JSON
 * only for lines of older versions, which have no time. Undefined for a line that is no record.
 */
function scanLine(text: Buffer, start: number, end: number, now: number, id: Buffer): number | undefined {
  if (end - start < LINE_START.length + ID_HEX + 2 || text[end - 1] !== 0x7d /* } */) return undefined;
  const idEnd = start + LINE_START.length + ID_HEX;
  if (
    text.compare(LINE_START, 0, LINE_START.length, start, start + LINE_START.length) === 0 &&
    text.compare(AT_FIELD, 0, AT_FIELD.length, idEnd, idEnd + AT_FIELD.length) === 0 &&
    decodeId(text, start + LINE_START.length, id)
  ) {
    let at = 0;
    let digit = idEnd + AT_FIELD.length;
    for (; digit < end && (text[digit] as number) >= 0x30 && (text[digit] as number) <= 0x39; digit++)
      at = at * 10 + (text[digit] as number) - 0x30;
    if (digit > idEnd + AT_FIELD.length && text[digit] === 0x2c) return at;
  }
  // Written before the dedup window: no time; kept for a whole window from now.
  const record = parseRecord(text.toString('utf8', start, end));
  if (record === undefined) return undefined;
  id.write(record.id, 'hex');
  return record.at ?? now;
}

/** Calls `line` for every line of the file at `path`, read a piece at a time. */
async function eachLine(
  path: string,
  line: (text: Buffer, start: number, end: number, offset: number) => void,
): Promise<{ length: number; endsWithNewline: boolean }> {
  const file = await open(path, 'r').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (file === undefined) return { length: 0, endsWithNewline: true };
  try {
    let carry = Buffer.alloc(0);
    let offset = 0;
    for (;;) {
      const piece = Buffer.allocUnsafe(READ_PIECE);
      const { bytesRead } = await file.read(piece, 0, piece.length, null);
      const text =
        carry.length > 0
          ? Buffer.concat([carry, piece.subarray(0, bytesRead)])
          : piece.subarray(0, bytesRead);
      let start = 0;
      for (let newline = text.indexOf(10); newline !== -1; newline = text.indexOf(10, start)) {
        line(text, start, newline, offset + start);
        start = newline + 1;
      }
      offset += start;
      carry = Buffer.from(text.subarray(start));
      if (bytesRead === 0) {
        if (carry.length > 0) line(carry, 0, carry.length, offset);
        return { length: offset + carry.length, endsWithNewline: carry.length === 0 };
      }
    }
  } finally {
    await file.close();
  }
}

export class ConfirmedJournal {
  readonly #index: IdIndex;
  readonly #windowMs: number;
  #file: FileHandle;
  /** The journal's length: where the next line goes. */
  #length: number;
  /** Lines waiting for the next group write. */
  #pending: StoredRecord[] = [];
  /** A failed write may have left a torn line: the next one starts on a fresh line. */
  #torn = false;
  readonly #flush = new GroupCommit(() => this.#writePending());

  private constructor(index: IdIndex, windowMs: number, file: FileHandle, length: number) {
    this.#index = index;
    this.#windowMs = windowMs;
    this.#file = file;
    this.#length = length;
  }

  /** Opens the journal at `path`, keeping ids confirmed within the last `windowMs`. */
  static async open(path: string, windowMs: number): Promise<ConfirmedJournal> {
    const now = Date.now();
    const oldest = now - windowMs;
    // Sized for the journal at once (a line is at least ~90 bytes): no rehashing as it loads.
    const bytes = await stat(path).then(
      (info) => info.size,
      () => 0,
    );
    const index = new IdIndex(Math.ceil(bytes / 90));
    const id = Buffer.alloc(ID_HEX / 2);
    let dead = 0;
    let read = await eachLine(path, (text, start, end, offset) => {
      const at = scanLine(text, start, end, now, id);
      if (at === undefined || at < oldest) dead++;
      else {
        if (index.set(id, offset, at)) dead++; // a later record of the id supersedes it
      }
    });
    let live = index;
    if (dead > 0 && dead >= index.size) {
      live = await ConfirmedJournal.#compact(path, index, now);
      read = { length: -1, endsWithNewline: true };
    }
    const file = await open(path, 'a+', 0o600);
    let length = read.length === -1 ? (await file.stat()).size : read.length;
    // A torn line must not glue itself to the next record.
    if (!read.endsWithNewline) {
      await file.write('\n');
      length++;
    }
    return new ConfirmedJournal(live, windowMs, file, length);
  }

  /**
   * Writes the lines `index` holds (the live ones) beside the journal, fsyncs them, renames them
   * over it and fsyncs the directory: at every instant one whole journal holds every live id.
   */
  static async #compact(path: string, index: IdIndex, now: number): Promise<IdIndex> {
    const compacted = new IdIndex(index.size);
    const temp = `${path}.compact`;
    const out = await open(temp, 'w', 0o600);
    try {
      const id = Buffer.alloc(ID_HEX / 2);
      let pending: Buffer[] = [];
      let length = 0;
      let written = 0;
      await eachLine(path, (text, start, end, offset) => {
        const at = scanLine(text, start, end, now, id);
        if (at === undefined || index.get(id)?.offset !== offset) return;
        compacted.set(id, length, at);
        pending.push(Buffer.from(text.subarray(start, end)), NEWLINE);
        length += end - start + 1;
      });
      // Written once: the live lines of a journal are far smaller than the journal was.
      const bytes = Buffer.concat(pending, length);
      pending = [];
      while (written < bytes.length) written += (await out.write(bytes, written)).bytesWritten;
      await out.sync();
    } finally {
      await out.close();
    }
    await rename(temp, path);
    const dir = await open(dirname(path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    return compacted;
  }

  /** Whether `id` (hex) was confirmed within the dedup window. */
  has(id: string): boolean {
    const entry = this.#index.get(Buffer.from(id, 'hex'));
    return entry !== undefined && entry.atMs >= Date.now() - this.#windowMs;
  }

  /** The record of `id` (hex) if it was confirmed within the dedup window. */
  async get(id: string): Promise<ConfirmedRecord | undefined> {
    if (!this.has(id)) return undefined;
    const { offset } = this.#index.get(Buffer.from(id, 'hex')) as { offset: number };
    const buf = Buffer.alloc(MAX_LINE);
    const { bytesRead } = await this.#file.read(buf, 0, buf.length, offset);
    const end = buf.indexOf(10);
    const record = parseRecord(buf.toString('utf8', 0, end === -1 ? bytesRead : end));
    if (record?.id !== id) return undefined;
    return { id: record.id, size: record.size, hash: record.hash, name: record.name };
  }

  /** Resolves once `record` is written and fsynced, together with the others appended meanwhile. */
  async append(record: ConfirmedRecord): Promise<void> {
    // Key order matters: the scan at start reads the id and `at` at fixed places.
    this.#pending.push({
      id: record.id,
      at: Date.now(),
      size: record.size,
      hash: record.hash,
      name: record.name,
    });
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
    const lead = this.#torn ? '\n' : '';
    const lines = batch.map((r) => `${JSON.stringify(r)}\n`);
    const bytes = Buffer.from(lead + lines.join(''));
    try {
      const { bytesWritten } = await this.#file.write(bytes);
      this.#length += bytesWritten;
      if (bytesWritten !== bytes.length) throw new Error('short write to the journal');
      await this.#file.sync();
      this.#torn = false;
    } catch (err) {
      this.#torn = true;
      throw err;
    }
    let offset = this.#length - bytes.length + Buffer.byteLength(lead);
    for (const [i, record] of batch.entries()) {
      this.#index.set(Buffer.from(record.id, 'hex'), offset, record.at as number);
      offset += Buffer.byteLength(lines[i] as string);
    }
  }
}
