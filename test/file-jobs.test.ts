// The file worker that makes a small received file's last calls (src/file-jobs.ts), on real
// files: what it writes is exactly the views it was given, at their position, with the
// attributes asked for, for every job of a batch; and its failures read as node:fs's own.
import assert from 'node:assert/strict';
import { closeSync, constants, openSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileJobs } from '../src/file-jobs.js';
import { tempDir } from './support/cli.js';

/** A new file, open for writing; closed when the test ends. */
function created(t: { after(fn: () => void): void }, path: string, flags = constants.O_RDWR): number {
  const fd = openSync(path, flags | constants.O_CREAT, 0o600);
  t.after(() => closeSync(fd));
  return fd;
}

test('each job of a batch writes its views, and only their bytes, with the mode and mtime asked', async (t) => {
  const dir = await tempDir(t);
  // Views into one larger buffer, as a frame's body is into socket reads.
  const read = Buffer.from('....hello, ....world!....');
  const parts = [read.subarray(4, 11), read.subarray(15, 21)];
  const mtimeMs = Date.UTC(2020, 0, 2, 3, 4, 5);
  const paths = Array.from({ length: 20 }, (_, i) => join(dir, `f${i}`));
  // All in one tick: they cross to the worker in one message.
  await Promise.all(
    paths.map((path, i) =>
      fileJobs.run({
        fd: created(t, path),
        data: { parts, position: i },
        mode: 0o640,
        mtimeMs,
      }),
    ),
  );
  for (const [i, path] of paths.entries()) {
    assert.deepEqual(await readFile(path), Buffer.concat([Buffer.alloc(i), Buffer.from('hello, world!')]));
    const info = await stat(path);
    assert.equal(info.mode & 0o777, 0o640);
    assert.equal(info.mtimeMs, mtimeMs);
  }
});

test('without a mode or an mtime, the file keeps its own', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'plain');
  const fd = created(t, path);
  const before = await stat(path);
  await fileJobs.run({
    fd,
    data: { parts: [Buffer.from('x')], position: 0 },
    mode: undefined,
    mtimeMs: undefined,
  });
  const after = await stat(path);
  assert.equal(after.mode, before.mode);
  assert.deepEqual(await readFile(path), Buffer.from('x'));
});

test('a write that fails rejects as node:fs reports it, and the next job still runs', async (t) => {
  const dir = await tempDir(t);
  const readOnly = join(dir, 'read-only');
  await writeFile(readOnly, 'kept');
  const fd = created(t, readOnly, constants.O_RDONLY);
  await assert.rejects(
    fileJobs.run({
      fd,
      data: { parts: [Buffer.from('lost')], position: 0 },
      mode: undefined,
      mtimeMs: undefined,
    }),
    (err: NodeJS.ErrnoException) => err.code === 'EBADF' && err.syscall === 'write',
  );
  assert.equal(await readFile(readOnly, 'utf8'), 'kept');
  const next = join(dir, 'next');
  await fileJobs.run({
    fd: created(t, next),
    data: { parts: [Buffer.from('ok')], position: 0 },
    mode: 0o600,
    mtimeMs: undefined,
  });
  assert.equal(await readFile(next, 'utf8'), 'ok');
});
