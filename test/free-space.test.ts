// The receiver's free-space check (src/store/free-space.ts), against the real filesystem: one
// statfs serves every item asked about meanwhile, and an item is refused only on a fresh one.
import assert from 'node:assert/strict';
import { statfs } from 'node:fs/promises';
import { test } from 'node:test';
import { RejectCode } from '../src/protocol/constants.js';
import { FreeSpace } from '../src/store/free-space.js';
import { PlacementRefused } from '../src/store/placement.js';
import { tempDir } from './support/cli.js';

function countingStatfs(): { read: typeof statfs; calls: () => number } {
  let calls = 0;
  const read = ((path: string) => {
    calls++;
    return statfs(path);
  }) as typeof statfs;
  return { read, calls: () => calls };
}

test('items asked about together share one statfs, and later ones reuse it within its second', async (t) => {
  const dir = await tempDir(t);
  const { read, calls } = countingStatfs();
  const space = new FreeSpace(dir, read);
  // A window of 64 small items arrives at once: before this fix each one issued its own statfs
  // while the first was in flight (1,060 statfs for 5,000 files, strace -c).
  await Promise.all(Array.from({ length: 64 }, () => space.ensure(1024, 1000)));
  assert.equal(calls(), 1);
  await space.ensure(1024, 1999);
  assert.equal(calls(), 1, 'a reading serves for a second');
  await space.ensure(1024, 2000);
  assert.equal(calls(), 2, 'and no longer');
});

test('an item larger than the last reading allowed is refused only on a fresh reading', async (t) => {
  const dir = await tempDir(t);
  const { read, calls } = countingStatfs();
  const space = new FreeSpace(dir, read);
  await space.ensure(1, 0);
  const huge = 2 ** 62;
  await assert.rejects(
    space.ensure(huge, 1),
    (err: unknown) => err instanceof PlacementRefused && err.rejectCode === RejectCode.NoSpace,
  );
  assert.equal(calls(), 2);
});
