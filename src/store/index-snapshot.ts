// A snapshot of the journal's id index (`confirmed.index`, PROTOCOL.md §7), so that a receiver
// with a million journalled ids starts by reading one file instead of scanning every line.
//
// It is a cache, never the record: it says which prefix of the journal it covers, and is used
// only when its checksum holds and the journal's bytes just before that point are still the
// ones it saw (so a compacted or replaced journal is never paired with an old index). The lines
// after the prefix are scanned as usual. A missing, torn or stale snapshot costs a full scan,
// nothing else; that is also why it is written without an fsync.
//
// Layout, little-endian: "ACKIDX01", xxh64 of every byte after it, covered (f64: journal
// bytes), lines (f64: lines in them), xxh64 of the journal's last TAIL bytes before `covered`,
// size (u32: ids), the hash multipliers, then the slots.
import type { FileHandle } from 'node:fs/promises';
import { open, rename, unlink } from 'node:fs/promises';
import { createHasher, type Hasher, loadHasher } from '../hash.js';
import { IdIndex, MULTIPLIER_WORDS, slotWords } from './id-index.js';

const MAGIC = Buffer.from('ACKIDX01');
const CHECKSUM_AT = 8;
const COVERED_AT = 16;
const LINES_AT = 24;
const TAIL_HASH_AT = 32;
const SIZE_AT = 40;
const MULTIPLIERS_AT = 44;
const HEADER_LEN = MULTIPLIERS_AT + 4 * MULTIPLIER_WORDS;
/** How much of the journal before `covered` must be unchanged. */
const TAIL = 4096;
const HASH_PIECE = 1024 * 1024;

export interface Snapshot {
  index: IdIndex;
  /** Journal bytes the index covers: lines from here on are scanned. */
  covered: number;
  /** Lines in those bytes, records or not. */
  lines: number;
}

/** Hashes `bytes` a piece at a time: the WebAssembly hasher copies what it is given. */
function update(hasher: Hasher, bytes: Uint8Array): void {
  for (let at = 0; at < bytes.length; at += HASH_PIECE) hasher.update(bytes.subarray(at, at + HASH_PIECE));
}

function bytesOf(words: Uint32Array): Buffer {
  return Buffer.from(words.buffer, words.byteOffset, words.byteLength);
}

async function readFully(file: FileHandle, into: Uint8Array, position: number): Promise<boolean> {
  for (let at = 0; at < into.length; ) {
    const { bytesRead } = await file.read(into, at, into.length - at, position + at);
    if (bytesRead === 0) return false;
    at += bytesRead;
  }
  return true;
}

/** The xxh64 of the journal's bytes [covered - TAIL, covered), or undefined if it is shorter. */
async function tailHash(journal: FileHandle, covered: number): Promise<Buffer | undefined> {
  const tail = Buffer.alloc(Math.min(TAIL, covered));
  if (!(await readFully(journal, tail, covered - tail.length))) return undefined;
  const digest = Buffer.alloc(8);
  digest.writeBigUInt64LE(createHasher().update(tail).digest());
  return digest;
}

/** Writes a snapshot of `index` covering the first `covered` bytes (`lines` lines) of `journal`. */
export async function saveSnapshot(path: string, journal: FileHandle, snapshot: Snapshot): Promise<void> {
  await loadHasher();
  const header = Buffer.alloc(HEADER_LEN);
  MAGIC.copy(header);
  header.writeDoubleLE(snapshot.covered, COVERED_AT);
  header.writeDoubleLE(snapshot.lines, LINES_AT);
  (await tailHash(journal, snapshot.covered))?.copy(header, TAIL_HASH_AT);
  const { size, multipliers, slots } = snapshot.index.table;
  header.writeUInt32LE(size, SIZE_AT);
  bytesOf(multipliers).copy(header, MULTIPLIERS_AT);
  const hasher = createHasher().update(header.subarray(COVERED_AT));
  update(hasher, bytesOf(slots));
  header.writeBigUInt64LE(hasher.digest(), CHECKSUM_AT);
  const temp = `${path}.new`;
  const out = await open(temp, 'w', 0o600);
  try {
    await out.writev([header, bytesOf(slots)]);
  } finally {
    await out.close();
  }
  await rename(temp, path);
}

/** The snapshot at `path` if it is whole and still belongs to `journal`; undefined otherwise. */
export async function loadSnapshot(path: string, journal: FileHandle): Promise<Snapshot | undefined> {
  const file = await open(path, 'r').catch(() => undefined);
  if (file === undefined) return undefined;
  await loadHasher();
  try {
    const length = (await file.stat()).size;
    const header = Buffer.alloc(HEADER_LEN);
    if (length < HEADER_LEN || length % 4 !== 0 || !(await readFully(file, header, 0))) return undefined;
    if (!header.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
    // Read straight into the table it becomes: no second copy of a 30 MiB index.
    const words = (length - HEADER_LEN) / 4;
    if (words === 0 || words % slotWords(1) !== 0) return undefined;
    const slots = new Uint32Array(words);
    if (!(await readFully(file, bytesOf(slots), HEADER_LEN))) return undefined;
    const hasher = createHasher().update(header.subarray(COVERED_AT));
    update(hasher, bytesOf(slots));
    if (hasher.digest() !== header.readBigUInt64LE(CHECKSUM_AT)) return undefined;
    const covered = header.readDoubleLE(COVERED_AT);
    if (!Number.isSafeInteger(covered) || covered < 0) return undefined;
    const tail = await tailHash(journal, covered);
    if (tail === undefined || !tail.equals(header.subarray(TAIL_HASH_AT, TAIL_HASH_AT + 8))) return undefined;
    const multipliers = new Uint32Array(MULTIPLIER_WORDS);
    bytesOf(multipliers).set(header.subarray(MULTIPLIERS_AT));
    const index = new IdIndex(0, { multipliers, size: header.readUInt32LE(SIZE_AT), slots });
    return { index, covered, lines: header.readDoubleLE(LINES_AT) };
  } finally {
    await file.close();
  }
}

/** Removes the snapshot: before the journal is replaced, so none can outlive it. */
export async function dropSnapshot(path: string): Promise<void> {
  await unlink(path).catch(() => {});
}
