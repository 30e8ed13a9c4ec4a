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
import { open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fsyncDir } from './fsync-dir.js';
import { GroupCommit } from './group-commit.js';
import { IdIndex, type IndexEntry, KEY_WORDS, keyFromHex, newKey } from './id-index.js';
import { dropSnapshot, loadSnapshot, saveSnapshot } from './index-snapshot.js';

export interface ConfirmedRecord {
  id: string;
  size: number;
  hash: string;
  name: string;
  /** v4 messages: the application's reply, base64, returned again to a retry. */
  reply?: string;
}

/** A line as written: `at` (ms since the epoch) right after the id, for the scan at start. */
interface StoredRecord extends ConfirmedRecord {
  at?: number;
}

const LINE_START = Buffer.from('{"id":"');
const ID_HEX = 32;
const AT_FIELD = Buffer.from('","at":');
const NEWLINE = Buffer.from('\n');
/**
 * The index is snapshotted (index-snapshot.ts) whenever the journal has grown this much past the
 * last snapshot, so that even a receiver that never closes cleanly scans at most this at start.
 */
const SNAPSHOT_AFTER = 16 * 1024 * 1024;

const snapshotPath = (journalPath: string) => `${journalPath.replace(/\.jsonl$/, '')}.index`;
/** The journal is scanned in pieces of this size. */
const READ_PIECE = 1024 * 1024;
/** Lines counted at the journal's start to estimate how many it holds. */
const SAMPLE = 256 * 1024;
/** A line is read back in one piece of this size, unless it is longer (a message's reply). */
const LINE_PIECE = 16 * 1024;
/** The longest line: a 4096-byte name escaped (at most 6 bytes a character) and a 64 KiB reply in base64. */
const MAX_LINE = 6 * 4096 + Math.ceil((64 * 1024) / 3) * 4 + 256;

function parseRecord(line: string): StoredRecord | undefined {
  try {
    const r = JSON.parse(line) as StoredRecord;
    return typeof r.id === 'string' &&
      /^[0-9a-f]{32}$/.test(r.id) &&
      typeof r.size === 'number' &&
      typeof r.hash === 'string' &&
      typeof r.name === 'string' &&
      (r.reply === undefined || typeof r.reply === 'string')
      ? r
      : undefined;
  } catch {
    return undefined; // a torn last line from a crash mid-append: that item was never confirmed
  }
}

const HEX_VALUE = new Int8Array(256).fill(-1);
for (let i = 0; i < 10; i++) HEX_VALUE[0x30 + i] = i;
for (let i = 0; i < 6; i++) HEX_VALUE[0x61 + i] = 10 + i;

/** Whether `text` holds `expected` at `from` (a loop: a native compare costs more per line). */
function holdsAt(text: Buffer, from: number, expected: Buffer): boolean {
  for (let i = 0; i < expected.length; i++) if (text[from + i] !== expected[i]) return false;
  return true;
}

/**
 * Reads the 32 lowercase hex digits at `from` into `key` (as `keyFromHex` does); false if they
 * are not that.
 */
function decodeKey(text: Buffer, from: number, key: Uint32Array): boolean {
  let word = 0;
  for (let i = 0; i < ID_HEX / 2; i++) {
    const hi = HEX_VALUE[text[from + 2 * i] as number] as number;
    const lo = HEX_VALUE[text[from + 2 * i + 1] as number] as number;
    if (hi < 0 || lo < 0) return false;
    word |= (hi * 16 + lo) << (8 * (i % 4));
    if (i % 4 === 3) {
      if (i < 4 * KEY_WORDS) key[i >> 2] = word;
      else key[0] = (key[0] as number) ^ word;
      word = 0;
    }
  }
  return true;
}

/**
 * The key (into `key`) and time of one line, read at fixed places without parsing JSON; JSON
 * only for lines of older versions, which have no time (null). Undefined for a line that is no
 * record.
 */
function scanLine(text: Buffer, start: number, end: number, key: Uint32Array): number | null | undefined {
  if (end - start < LINE_START.length + ID_HEX + 2 || text[end - 1] !== 0x7d /* } */) return undefined;
  const idEnd = start + LINE_START.length + ID_HEX;
  if (
    holdsAt(text, start, LINE_START) &&
    holdsAt(text, idEnd, AT_FIELD) &&
    decodeKey(text, start + LINE_START.length, key)
  ) {
    let at = 0;
    let digit = idEnd + AT_FIELD.length;
    for (; digit < end && (text[digit] as number) >= 0x30 && (text[digit] as number) <= 0x39; digit++)
      at = at * 10 + (text[digit] as number) - 0x30;
    if (digit > idEnd + AT_FIELD.length && text[digit] === 0x2c) return at;
  }
  // Written before the dedup window: no time (null); kept for a whole window from now.
  const record = parseRecord(text.toString('utf8', start, end));
  if (record === undefined) return undefined;
  keyFromHex(record.id, key);
  return record.at ?? null;
}

/**
 * About how many lines `file` holds, from the length of those at its start, a little over: the
 * index is sized once for them, not grown (and copied) as they load.
 */
async function estimateLines(file: FileHandle): Promise<number> {
  const size = (await file.stat()).size;
  const sample = Buffer.allocUnsafe(Math.min(SAMPLE, size));
  const { bytesRead } = await file.read(sample, 0, sample.length, 0);
  let lines = 0;
  for (let at = sample.indexOf(10); at !== -1 && at < bytesRead; at = sample.indexOf(10, at + 1)) lines++;
  return lines === 0 ? 0 : Math.ceil((size / bytesRead) * lines * 1.05);
}

/**
 * Calls `line` for every line of `file` from offset `from` on, read a piece at a time into one buffer: its
 * memory does not grow with the journal. A line longer than any this code writes is no record,
 * and is passed on as one piece of junk however long it is.
 */
async function eachLine(
  file: FileHandle,
  from: number,
  line: (text: Buffer, start: number, end: number, offset: number) => void,
): Promise<{ length: number; endsWithNewline: boolean }> {
  const text = Buffer.allocUnsafe(READ_PIECE + MAX_LINE);
  /** The journal offset of text[0]. */
  let base = from;
  /** Bytes of an unfinished line at the start of `text`. */
  let carried = 0;
  /** Inside a line too long to be a record: its bytes are dropped up to its end. */
  let skipping = false;
  for (;;) {
    const { bytesRead } = await file.read(text, carried, text.length - carried, base + carried);
    const filled = carried + bytesRead;
    let start = 0;
    for (
      let newline = text.indexOf(10);
      newline !== -1 && newline < filled;
      newline = text.indexOf(10, start)
    ) {
      if (!skipping) line(text, start, newline, base + start);
      skipping = false;
      start = newline + 1;
    }
    if (bytesRead === 0) {
      if (filled > start && !skipping) line(text, start, filled, base + start);
      return { length: base + filled, endsWithNewline: filled === start && !skipping };
    }
    if (filled - start > MAX_LINE) {
      if (!skipping) line(text, start, filled, base + start);
      skipping = true;
      start = filled;
    }
    text.copyWithin(0, start, filled);
    base += start;
    carried = filled - start;
  }
}

export class ConfirmedJournal {
  readonly #path: string;
  readonly #index: IdIndex;
  readonly #windowMs: number;
  #file: FileHandle;
  /** The journal's length: where the next line goes. */
  #length: number;
  /** Lines in the journal, records or not: what is not a live record is due for compaction. */
  #lines: number;
  /** The journal's length at the last snapshot of the index. */
  #snapshotted = 0;
  /** Lines waiting for the next group write. */
  #pending: StoredRecord[] = [];
  /** A failed write may have left a torn line: the next one starts on a fresh line. */
  #torn = false;
  readonly #flush = new GroupCommit(() => this.#writePending());

  private constructor(
    path: string,
    index: IdIndex,
    windowMs: number,
    file: FileHandle,
    length: number,
    lines: number,
  ) {
    this.#path = path;
    this.#index = index;
    this.#windowMs = windowMs;
    this.#file = file;
    this.#length = length;
    this.#lines = lines;
  }

  /** Opens the journal at `path`, keeping ids confirmed within the last `windowMs`. */
  static async open(path: string, windowMs: number): Promise<ConfirmedJournal> {
    const now = Date.now();
    const oldest = now - windowMs;
    let file = await open(path, 'a+', 0o600);
    try {
      const snapshot = await loadSnapshot(snapshotPath(path), file);
      const index = snapshot?.index ?? new IdIndex(await estimateLines(file));
      let lines = snapshot?.lines ?? 0;
      const key = newKey();
      const read = await eachLine(file, snapshot?.covered ?? 0, (text, start, end, offset) => {
        lines++;
        const at = scanLine(text, start, end, key);
        if (at === undefined) return;
        // A later record of an id supersedes an earlier one.
        if ((at ?? now) >= oldest) index.set(key, offset, at ?? now);
      });
      let length = read.length;
      // A torn line must not glue itself to the next record.
      if (!read.endsWithNewline) {
        await file.write('\n');
        length++;
      }
      const live = index.countSince(oldest);
      if (lines - live > 0 && lines - live >= live) {
        await file.close();
        await dropSnapshot(snapshotPath(path));
        const compacted = await ConfirmedJournal.#compact(path, index, { now, oldest });
        file = await open(path, 'a+', 0o600);
        const reopened = new ConfirmedJournal(
          path,
          compacted.index,
          windowMs,
          file,
          compacted.length,
          compacted.index.size,
        );
        await reopened.#snapshot();
        return reopened;
      }
      const journal = new ConfirmedJournal(path, index, windowMs, file, length, lines);
      journal.#snapshotted = snapshot?.covered ?? 0;
      if (length - journal.#snapshotted >= SNAPSHOT_AFTER) await journal.#snapshot();
      return journal;
    } catch (err) {
      await file.close().catch(() => {});
      throw err;
    }
  }

  /**
   * Writes the live lines `index` points at beside the journal, fsyncs them, renames them over
   * it and fsyncs the directory: at every instant one whole journal holds every live id.
   */
  static async #compact(
    path: string,
    index: IdIndex,
    { now, oldest }: { now: number; oldest: number },
  ): Promise<{ index: IdIndex; length: number }> {
    const compacted = new IdIndex(index.countSince(oldest));
    const temp = `${path}.compact`;
    const out = await open(temp, 'w', 0o600);
    const journal = await open(path, 'r');
    let length = 0;
    try {
      const key = newKey();
      let pending: Buffer[] = [];
      let written = 0;
      await eachLine(journal, 0, (text, start, end, offset) => {
        const at = scanLine(text, start, end, key);
        const entry = index.get(key);
        if (at === undefined || entry?.offset !== offset || entry.atMs < oldest) return;
        compacted.set(key, length, at ?? now);
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
      await journal.close();
    }
    await rename(temp, path);
    await fsyncDir(dirname(path));
    return { index: compacted, length };
  }

  /** Saves the index for the next start; only after whole lines, so the next scan starts on one. */
  async #snapshot(): Promise<void> {
    if (this.#torn) return;
    this.#snapshotted = this.#length;
    await saveSnapshot(snapshotPath(this.#path), this.#file, {
      index: this.#index,
      covered: this.#length,
      lines: this.#lines,
    }).catch(() => {}); // only a cache: the next start scans instead
  }

  /**
   * Whether `id` (hex) was confirmed within the dedup window: never no for one that was; yes,
   * once in 2^96, for another. What depends on the answer being yes reads the record (`get`).
   */
  has(id: string): boolean {
    return this.#live(id) !== undefined;
  }

  #live(id: string): IndexEntry | undefined {
    const entry = this.#index.get(keyFromHex(id));
    return entry !== undefined && entry.atMs >= Date.now() - this.#windowMs ? entry : undefined;
  }

  /** The record of `id` (hex) if it was confirmed within the dedup window. */
  async get(id: string): Promise<ConfirmedRecord | undefined> {
    const entry = this.#live(id);
    if (entry === undefined) return undefined;
    let buf = Buffer.alloc(LINE_PIECE);
    let { bytesRead } = await this.#file.read(buf, 0, buf.length, entry.offset);
    if (buf.indexOf(10) === -1 && bytesRead === buf.length) {
      buf = Buffer.alloc(MAX_LINE);
      ({ bytesRead } = await this.#file.read(buf, 0, buf.length, entry.offset));
    }
    const end = buf.indexOf(10);
    const record = parseRecord(buf.toString('utf8', 0, end === -1 ? bytesRead : end));
    // The index keys on part of the id: only the record's whole id says it is this one.
    if (record?.id !== id) return undefined;
    const { size, hash, name, reply } = record;
    return { id, size, hash, name, ...(reply !== undefined && { reply }) };
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
      ...(record.reply !== undefined && { reply: record.reply }),
    });
    await this.#flush.run();
  }

  async close(): Promise<void> {
    await this.#flush.run().catch(() => {});
    await this.#snapshot();
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
      this.#lines += batch.length + (lead === '' ? 0 : 1);
      if (bytesWritten !== bytes.length) throw new Error('short write to the journal');
      await this.#file.sync();
      this.#torn = false;
    } catch (err) {
      this.#torn = true;
      throw err;
    }
    let offset = this.#length - bytes.length + Buffer.byteLength(lead);
    for (const [i, record] of batch.entries()) {
      this.#index.set(keyFromHex(record.id), offset, record.at as number);
      offset += Buffer.byteLength(lines[i] as string);
    }
    // Here, inside the group write, nothing changes the index while it is saved.
    if (this.#length - this.#snapshotted >= SNAPSHOT_AFTER) await this.#snapshot();
  }
}
