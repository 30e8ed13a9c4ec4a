// The journal of confirmed ids, on real files: kept for the dedup window and no longer,
// compacted without losing a live record, read back by id, and tolerant of what older versions
// and crashes leave (lines without a time, a torn last line).
import assert from 'node:assert/strict';
import { appendFile, readFile, stat, writeFile } from 'node:fs/promises';
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

/**
 * A journal of 100 ids closed cleanly (so snapshotted), then: one more line appended as by a
 * receiver that died after it, and the first line's id changed in place to id(7777), far from
 * the snapshot's checked tail. An open that uses the snapshot knows id(1000) and not id(7777);
 * one that scans the whole journal knows it the other way round.
 */
async function snapshottedJournal(dir: string): Promise<{ path: string; snapshot: string }> {
  const path = join(dir, 'confirmed.jsonl');
  const journal = await ConfirmedJournal.open(path, 30 * DAY);
  for (let n = 1000; n < 1100; n++) await journal.append(record(n));
  await journal.close();
  await appendFile(path, `${stored(5000, Date.now())}\n`);
  const text = await readFile(path, 'utf8');
  assert.ok(text.length - text.indexOf(id(1001)) > 4096, 'the first line lies outside the checked tail');
  await writeFile(path, text.replace(id(1000), id(7777)));
  return { path, snapshot: join(dir, 'confirmed.index') };
}

test('a clean close snapshots the index; the next open uses it and scans only the lines after it', async (t) => {
  const { path, snapshot } = await snapshottedJournal(await tempDir(t));
  assert.ok((await stat(snapshot)).size > 0);
  const journal = await ConfirmedJournal.open(path, 30 * DAY);
  assert.equal(journal.has(id(1000)), true, 'known from the snapshot');
  assert.equal(journal.has(id(7777)), false, 'the prefix was not scanned');
  assert.equal(journal.has(id(5000)), true, 'the line after the snapshot was scanned');
  assert.equal(journal.has(id(1050)), true);
  // Only the record's whole id is believed: the changed line answers for neither id.
  assert.equal(await journal.get(id(1000)), undefined);
  assert.deepEqual(await journal.get(id(1099)), record(1099));
  await journal.close();
});

for (const [what, spoil] of [
  ['a torn snapshot', (s: Buffer) => s.subarray(0, s.length - 24)],
  ['a snapshot with a flipped bit', (s: Buffer) => Buffer.from(s).fill((s[100] as number) ^ 1, 100, 101)],
] as const) {
  test(`${what} is not used: the whole journal is scanned`, async (t) => {
    const { path, snapshot } = await snapshottedJournal(await tempDir(t));
    await writeFile(snapshot, spoil(await readFile(snapshot)));
    const journal = await ConfirmedJournal.open(path, 30 * DAY);
    assert.equal(journal.has(id(7777)), true);
    assert.equal(journal.has(id(1000)), false);
    assert.equal(journal.has(id(5000)), true);
    await journal.close();
  });
}

test('a snapshot of another journal is not used: its lines before the snapshot point differ', async (t) => {
  const { path } = await snapshottedJournal(await tempDir(t));
  // As a journal replaced by another of at least the same length: the last line before the
  // snapshot point changed.
  const text = await readFile(path, 'utf8');
  await writeFile(path, text.replace(id(1099), id(8888)));
  const journal = await ConfirmedJournal.open(path, 30 * DAY);
  assert.equal(journal.has(id(7777)), true);
  assert.equal(journal.has(id(8888)), true);
  assert.equal(journal.has(id(1099)), false);
  await journal.close();
});
