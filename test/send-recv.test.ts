// Round trips through the real CLI: a receiver process, sender processes, real files, port 0.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ackship, itemRecords, records, run, startReceiver, tempDir } from './support/cli.js';
import { sha256, sha256File, writeRandom } from './support/files.js';

describe('send to recv', () => {
  for (const size of [0, 1, 3 * 1024 * 1024 + 17, 200 * 1024 * 1024]) {
    test(`a ${size}-byte file arrives identical, with its mode and mtime`, async (t) => {
      const dir = await tempDir(t);
      const src = join(dir, 'src.bin');
      await writeRandom(src, size);
      const mtime = new Date('2024-02-03T04:05:06.789Z');
      await chmod(src, 0o640);
      await utimes(src, mtime, mtime);
      const receiver = await startReceiver(t, ['--out', join(dir, 'out')]);
      const env = { ACKSHIP_STATE_DIR: join(dir, 'state') };
      const sent = await run(t, ['send', `127.0.0.1:${receiver.port}`, src, '--json'], { env });
      assert.equal(sent.code, 0, sent.stderr);
      const [record] = itemRecords(sent.stdout);
      assert.equal(record?.status, 'confirmed');
      assert.equal(record?.bytes, size);
      assert.equal(record?.bytesSent, size);
      // Memory stays flat in the item's size: the receiver's peak RSS is far below 200 MiB.
      const status = await readFile(`/proc/${receiver.child.pid}/status`, 'utf8');
      const peakKiB = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]);
      assert.ok(peakKiB > 0 && peakKiB < 150 * 1024, `receiver peak RSS ${peakKiB} KiB`);
      receiver.child.kill('SIGTERM');
      assert.equal((await receiver.exited).code, 143);
      const placed = join(dir, 'out', 'src.bin');
      assert.equal(await sha256File(placed), await sha256File(src));
      const info = await stat(placed);
      assert.equal(info.mode & 0o777, 0o640);
      assert.equal(info.mtime.getTime(), mtime.getTime());
      assert.deepEqual(await readdir(join(dir, 'out', '.ackship', 'parts')), [], 'no partial is left behind');
    });
  }

  test('stdin is spooled and stored under --name; the spool is removed', async (t) => {
    const dir = await tempDir(t);
    const payload = randomBytes(1024 * 1024 + 3);
    const receiver = await startReceiver(t, ['--out', dir, '--once']);
    const spoolParent = join(dir, 'tmp');
    await mkdir(spoolParent);
    const sent = await run(t, ['send', `127.0.0.1:${receiver.port}`, '-', '--name', 'piped/data.bin'], {
      stdin: payload,
      env: { ACKSHIP_STATE_DIR: join(dir, 'state'), TMPDIR: spoolParent },
    });
    assert.equal(sent.code, 0, sent.stderr);
    assert.match(sent.stdout, /^confirmed piped\/data\.bin \(1\.0 MiB, xxh64 [0-9a-f]{16}\)/);
    assert.equal((await receiver.exited).code, 0);
    assert.equal(sha256(await readFile(join(dir, 'piped', 'data.bin'))), sha256(payload));
    assert.deepEqual(await readdir(spoolParent), [], 'the spool is gone');
  });

  test('recv --out - writes the verified item to stdout and its report to stderr', async (t) => {
    const dir = await tempDir(t);
    const src = join(dir, 'src.bin');
    await writeRandom(src, 5 * 1024 * 1024 + 1);
    const receiver = await startReceiver(t, ['--out', '-']);
    const sent = await run(t, ['send', `127.0.0.1:${receiver.port}`, src], {
      env: { ACKSHIP_STATE_DIR: join(dir, 'state') },
    });
    assert.equal(sent.code, 0, sent.stderr);
    const got = await receiver.exited;
    assert.equal(got.code, 0, got.stderr);
    assert.equal(sha256(receiver.stdoutBytes()), await sha256File(src));
    assert.match(got.stderr, /confirmed src\.bin/);
  });

  test('several senders at once are all served', async (t) => {
    const dir = await tempDir(t);
    const receiver = await startReceiver(t, ['--out', join(dir, 'out'), '--json']);
    const files = await Promise.all(
      [0, 1, 2, 3].map(async (i) => {
        const path = join(dir, `f${i}`);
        await writeRandom(path, 2 * 1024 * 1024 + i);
        return path;
      }),
    );
    const sends = await Promise.all(
      files.map((f) =>
        run(t, ['send', `127.0.0.1:${receiver.port}`, f], { env: { ACKSHIP_STATE_DIR: join(dir, 'state') } }),
      ),
    );
    for (const s of sends) assert.equal(s.code, 0, s.stderr);
    for (const f of files)
      assert.equal(await sha256File(join(dir, 'out', f.slice(dir.length + 1))), await sha256File(f));
    const confirmed = records(receiver.stdout).filter((r) => r.event === 'confirmed');
    assert.equal(confirmed.length, 4);
    receiver.child.kill('SIGTERM');
    assert.equal((await receiver.exited).code, 143);
  });

  test('a receiver listening on ::1 is reached as [::1]:PORT', async (t) => {
    const dir = await tempDir(t);
    const receiver = ackship(t, ['recv', '--listen', '[::1]:0', '--out', dir, '--once']);
    const [, port] = await receiver.waitFor(/listening on \[::1\]:(\d+)/);
    await writeFile(join(dir, 'src'), 'over IPv6');
    const sent = await run(t, ['send', `[::1]:${port}`, join(dir, 'src'), '--name', 'v6.txt'], {
      env: { ACKSHIP_STATE_DIR: join(dir, 'state') },
    });
    assert.equal(sent.code, 0, sent.stderr);
    assert.equal(await readFile(join(dir, 'v6.txt'), 'utf8'), 'over IPv6');
  });
});
