// A receiver whose DIR is a small tmpfs (root only; skipped with the reason otherwise): an item
// that cannot fit is refused with "no space", nothing partial stays or stays visible, the space
// is given back, and the receiver serves the next item.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, rmdir, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, type TestContext, test } from 'node:test';
import { run, startReceiver, tempDir } from './support/cli.js';
import { writeRandom } from './support/files.js';

const MiB = 1024 * 1024;

/** Mounts an 8 MiB tmpfs for the test, or says why it cannot. */
async function smallDisk(t: TestContext): Promise<string | undefined> {
  const mountPoint = await mkdtemp(join(tmpdir(), 'ackship-disk-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mountPoint], { stdio: 'pipe' });
  } catch (err) {
    await rmdir(mountPoint);
    t.skip(`cannot mount a tmpfs here (needs root): ${(err as Error).message.split('\n')[0]}`);
    return undefined;
  }
  // Lazily: the receiver may still hold files there until its own cleanup kills it.
  t.after(async () => {
    execFileSync('umount', ['-l', mountPoint]);
    await rmdir(mountPoint);
  });
  return mountPoint;
}

async function freeBytes(path: string): Promise<number> {
  const fs = await statfs(path);
  return fs.bavail * fs.bsize;
}

describe('a full disk on the receiver', () => {
  test('a file larger than the free space is refused before any data; the next item is served', async (t) => {
    const disk = await smallDisk(t);
    if (disk === undefined) return;
    const dir = await tempDir(t);
    const out = join(disk, 'out');
    const receiver = await startReceiver(t, ['--out', out]);
    const big = join(dir, 'big.bin');
    await writeRandom(big, 12 * MiB);
    const env = { ACKSHIP_STATE_DIR: join(dir, 'state') };
    const sent = await run(t, ['send', `127.0.0.1:${receiver.port}`, big], { env });
    assert.equal(sent.code, 65, sent.stderr);
    assert.match(sent.stderr, /no space: \d+ bytes needed, \d+ free on the receiver/);
    assert.deepEqual(await readdir(out), ['.ackship']);
    assert.deepEqual(await readdir(join(out, '.ackship', 'parts')), []);
    await writeFile(join(dir, 'small.txt'), 'still here');
    const next = await run(t, ['send', `127.0.0.1:${receiver.port}`, join(dir, 'small.txt')], { env });
    assert.equal(next.code, 0, next.stderr);
  });

  test('a stream that fills the disk is refused mid-way; its partial is deleted and the space given back', async (t) => {
    const disk = await smallDisk(t);
    if (disk === undefined) return;
    const dir = await tempDir(t);
    const out = join(disk, 'out');
    const receiver = await startReceiver(t, ['--out', out]);
    const before = await freeBytes(disk);
    const stdin = Readable.from(
      (function* () {
        for (let i = 0; i < 12; i++) yield Buffer.alloc(MiB, i);
      })(),
    );
    const env = { ACKSHIP_STATE_DIR: join(dir, 'state') };
    const sent = await run(t, ['send', `127.0.0.1:${receiver.port}`, '-', '--name', 'flood.bin'], {
      env,
      stdin,
    });
    assert.equal(sent.code, 65, sent.stderr);
    assert.match(sent.stderr, /receiver rejected flood\.bin: .*ENOSPC/);
    assert.deepEqual(await readdir(out), ['.ackship'], 'nothing under a final name');
    assert.deepEqual(await readdir(join(out, '.ackship', 'parts')), [], 'the partial is gone');
    assert.ok((await freeBytes(disk)) >= before - 64 * 1024, 'the space came back');
    await writeFile(join(dir, 'small.txt'), 'still here');
    const next = await run(t, ['send', `127.0.0.1:${receiver.port}`, join(dir, 'small.txt')], { env });
    assert.equal(next.code, 0, next.stderr);
  });
});
