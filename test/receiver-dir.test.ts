// The output directory (issue 14): one receiver at a time, a stale lock from a killed one taken
// over, and an unusable directory reported with its real error.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ackship, run, startReceiver, tempDir } from './support/cli.js';

describe('the output directory', () => {
  test('a second receiver on the same directory refuses to start, and says who holds it', async (t) => {
    const out = join(await tempDir(t), 'out');
    const first = await startReceiver(t, ['--out', out]);
    const starting = ackship(t, ['recv', '--listen', '127.0.0.1:0', '--out', out]);
    // Either it exits, or it starts serving the same directory: the defect, failed at once.
    const second = await Promise.race([
      starting.exited,
      starting.waitFor(/listening on/).then(() => assert.fail('a second receiver serves the same directory')),
    ]);
    assert.equal(second.code, 74, second.stderr);
    assert.match(second.stderr, new RegExp(`already served by pid ${first.child.pid} on `));
    // The first one goes on serving, and holds the lock until it stops.
    assert.equal(first.child.exitCode, null);
    first.signal('SIGTERM');
    await first.exited;
    await assert.rejects(readFile(join(out, '.ackship', 'lock')), { code: 'ENOENT' });
  });

  test('the lock of a receiver killed with SIGKILL is stale: the next one starts', async (t) => {
    const out = join(await tempDir(t), 'out');
    const first = await startReceiver(t, ['--out', out]);
    first.signal('SIGKILL');
    await first.exited;
    assert.match(await readFile(join(out, '.ackship', 'lock'), 'utf8'), new RegExp(`^${first.child.pid} `));
    const next = await startReceiver(t, ['--out', out]);
    assert.match(await readFile(join(out, '.ackship', 'lock'), 'utf8'), new RegExp(`^${next.child.pid} `));
  });

  test('an empty lock (what a power cut leaves of one never fsynced) is stale: the receiver starts', async (t) => {
    const out = join(await tempDir(t), 'out');
    await mkdir(join(out, '.ackship'), { recursive: true });
    await writeFile(join(out, '.ackship', 'lock'), '');
    const receiver = await startReceiver(t, ['--out', out]);
    assert.match(
      await readFile(join(out, '.ackship', 'lock'), 'utf8'),
      new RegExp(`^${receiver.child.pid} `),
    );
  });

  const root = process.getuid?.() === 0;
  test('a read-only output directory is reported as read-only, not as missing', {
    skip: root ? false : 'mounting a read-only tmpfs needs root',
  }, async (t) => {
    // Not under tempDir(t): its removal would run before the unmount.
    const ro = await mkdtemp(join(tmpdir(), 'ackship-ro-'));
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro', 'tmpfs', ro], { stdio: 'pipe' });
    } catch (err) {
      await rm(ro, { recursive: true });
      return t.skip(`cannot mount a read-only tmpfs here: ${(err as Error).message}`);
    }
    t.after(async () => {
      execFileSync('umount', [ro]);
      await rm(ro, { recursive: true });
    });
    const refused = await run(t, ['recv', '--listen', '127.0.0.1:0', '--out', ro]);
    assert.equal(refused.code, 74);
    assert.match(refused.stderr, /EROFS/);
    assert.doesNotMatch(refused.stderr, /ENOENT/);
  });
});
