// One file's writes one at a time (src/store/write-queue.ts), into a real file: those queued
// behind a write under way go as one call when they meet end to end, in order; a failure fails
// what follows it without writing it; a write with none before it starts in the call.
import assert from 'node:assert/strict';
import { closeSync, openSync, readFileSync, writevSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { WriteQueue } from '../src/store/write-queue.js';
import { tempDir } from './support/cli.js';
import { gate } from './support/gate.js';

test('writes queued behind one under way go as one call where they meet, in order, never two at once', async (t) => {
  const path = join(await tempDir(t), 'file');
  const file = await open(path, 'w+');
  t.after(() => file.close());
  const first = gate();
  const calls: Array<{ position: number; length: number; parts: number }> = [];
  let inFlight = 0;
  let mostInFlight = 0;
  const queue = new WriteQueue(async (parts, position, length) => {
    calls.push({ position, length, parts: parts.length });
    mostInFlight = Math.max(mostInFlight, ++inFlight);
    if (calls.length === 1) await first.opened;
    await file.writev(parts as Buffer[], position);
    inFlight--;
  });
  const written = [
    queue.add([Buffer.from('aaaa')], 0, 4),
    // Behind the first, end to end: one call.
    queue.add([Buffer.from('bb'), Buffer.from('cc')], 4, 4),
    queue.add([Buffer.from('dddd')], 8, 4),
    // After a gap: a call of its own.
    queue.add([Buffer.from('ff')], 14, 2),
  ];
  first.open();
  await Promise.all(written);
  assert.deepEqual(calls, [
    { position: 0, length: 4, parts: 1 },
    { position: 4, length: 8, parts: 3 },
    { position: 14, length: 2, parts: 1 },
  ]);
  assert.equal(mostInFlight, 1);
  assert.equal((await readFile(path)).toString('latin1'), 'aaaabbccdddd\0\0ff');
});

test('a failed write fails it and every write after it, and those are never made', async (t) => {
  const path = join(await tempDir(t), 'file');
  const file = await open(path, 'w+');
  t.after(() => file.close());
  const first = gate();
  let calls = 0;
  const queue = new WriteQueue(async (parts, position) => {
    calls++;
    await first.opened;
    await file.writev(parts as Buffer[], position);
    throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
  });
  const failed = queue.add([Buffer.from('a')], 0, 1);
  // Not end to end with the first: on their own, after it.
  const later = [queue.add([Buffer.from('c')], 2, 1), queue.add([Buffer.from('e')], 4, 1)];
  first.open();
  for (const write of [failed, ...later]) {
    await assert.rejects(write, (err: NodeJS.ErrnoException) => err.code === 'ENOSPC');
  }
  await assert.rejects(
    queue.add([Buffer.from('g')], 6, 1),
    (err: NodeJS.ErrnoException) => err.code === 'ENOSPC',
  );
  assert.equal(calls, 1);
  assert.equal((await readFile(path)).toString('latin1'), 'a');
});

test('a write with none under way is made in the call, so a synchronous one is done when it returns', async (t) => {
  const path = join(await tempDir(t), 'file');
  const fd = openSync(path, 'w+');
  t.after(() => closeSync(fd));
  const queue = new WriteQueue(async (parts, position) => {
    writevSync(fd, parts, position);
  });
  const written = queue.add([Buffer.from('now')], 0, 3);
  assert.equal(readFileSync(path, 'latin1'), 'now');
  await written;
});
