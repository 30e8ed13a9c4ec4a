// The journal of confirmed ids, on real files: kept for the dedup window and no longer,
// compacted without losing a live record, read back by id, and tolerant of what older versions
// and crashes leave (lines without a time, a torn last line).
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfirmedJournal } from '../src/store/journal.js';
import { tempDir } from './support/cli.js';

const DAY = 86_400_000;
const id = (n: number) => n.toString(16).padStart(32, '0');
const record = (n: number, name = `f${n}`) => ({
  id: id(n),
  size: n,
  hash: n.toString(16).padStart(16, '0'),
  name,
});
/** A line as this version writes it: the time right after the id. */
const stored = (n: number, at: number, name?: string) => {
  const { id: key, ...rest } = record(n, name);
  return JSON.stringify({ id: key, at, ...rest });
};

test('ids are kept for the window, compaction keeps every live one, and the journal reopens the same', async (t) => {
  const path = join(await tempDir(t), 'confirmed.jsonl');
  const now = Date.now();
  const lines = [
    ...Array.from({ length: 50 }, (_, n) => stored(n, now - 40 * DAY)),
    ...Array.from({ length: 10 }, (_, n) => stored(100 + n, now - DAY)),
    // An older version's line, without a time: kept for a whole window from now.
    JSON.stringify(record(200)),
    // The same id twice: the later record wins.
    stored(101, now, 'f101-again'),
  ];
  // A torn last line: never fsynced whole, so never confirmed.
  await writeFile(path, `${lines.join('\n')}\n{"id":"${id(300)}","at":${now},"si`);
  const journal = await ConfirmedJournal.open(path, 30 * DAY);
  for (let n = 0; n < 50; n++) assert.equal(journal.has(id(n)), false, 'expired');
  for (let n = 100; n < 110; n++) assert.equal(journal.has(id(n)), true, 'live');
  assert.deepEqual(await journal.get(id(200)), record(200));
  assert.equal((await journal.get(id(101)))?.name, 'f101-again');
  assert.equal(journal.has(id(300)), false, 'the torn line is no record');
  await journal.append(record(400));
  assert.deepEqual(await journal.get(id(400)), record(400));
  await journal.close();
  // Expired lines outnumbered live ones: the file now holds the 12 live ids, and a new line.
  const text = await readFile(path, 'utf8');
  assert.equal(text.split('\n').filter((l) => l.trim() !== '').length, 12);
  const reopened = await ConfirmedJournal.open(path, 30 * DAY);
  for (const n of [100, 101, 105, 109, 200, 400]) assert.equal(reopened.has(id(n)), true, `${n} survived`);
  assert.equal((await reopened.get(id(101)))?.name, 'f101-again');
  assert.equal(reopened.has(id(3)), false);
  await reopened.close();
});
