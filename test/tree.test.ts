// Trees and many items over one connection, through the real CLI.
import assert from 'node:assert/strict';
import { chmod, mkdir, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { describe, test } from 'node:test';
import { ExitCode } from '../src/errors.js';
import { ackship, records, run, startReceiver, tempDir } from './support/cli.js';
import { sha256File, writeRandom } from './support/files.js';
import { FaultProxy } from './support/proxy.js';

/** A tree of `files` small files in nested directories, empty files, an empty directory and one big file. */
async function makeTree(root: string, files: number, bigSize: number): Promise<void> {
  await mkdir(join(root, 'empty-dir'), { recursive: true });
  await Promise.all(
    Array.from({ length: files }, async (_, i) => {
      const dir = join(root, `d${i % 10}`, `e${i % 7}`);
      await mkdir(dir, { recursive: true });
      const path = join(dir, `f${i}.txt`);
      await writeFile(path, i % 50 === 0 ? '' : `file ${i}\n`.repeat(i % 13));
      if (i % 3 === 0) await chmod(path, 0o600);
    }),
  );
  await writeRandom(join(root, 'big.bin'), bigSize);
  await chmod(join(root, 'big.bin'), 0o640);
}

/** Relative path → [sha256, mode] of every file, and every directory, under `root`. */
async function snapshot(root: string, skip = '.ackship'): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    const rel = relative(root, path);
    if (rel === skip || rel.startsWith(`${skip}/`)) continue;
    if (entry.isDirectory()) out.set(`${rel}/`, 'dir');
    else out.set(rel, `${await sha256File(path)} ${((await stat(path)).mode & 0o777).toString(8)}`);
  }
  return out;
}

const env = (dir: string) => ({ env: { ACKSHIP_STATE_DIR: join(dir, 'state') } });

describe('trees', () => {
  test('2,000 files, empty files, an empty directory and 50 MiB go over one connection, identical', async (t) => {
    const dir = await tempDir(t);
    const src = join(dir, 'tree');
    await makeTree(src, 2000, 50 * 1024 * 1024);
    const receiver = await startReceiver(t, ['--out', join(dir, 'out'), '--json']);
    const sent = await run(t, ['send', `127.0.0.1:${receiver.port}`, src, '-r', '--json'], env(dir));
    assert.equal(sent.code, 0, sent.stderr.slice(0, 2000));
    const summary = records(sent.stdout).find((r) => r.event === 'summary');
    assert.equal(summary?.items, 2002);
    assert.equal(summary?.confirmed, 2002);
    assert.equal(summary?.connections, 1);
    assert.deepEqual(await snapshot(join(dir, 'out', 'tree')), await snapshot(src));
    receiver.child.kill('SIGTERM');
    await receiver.exited;
    const sessions = records(receiver.stdout).filter((r) => r.event === 'session');
    assert.equal(sessions.length, 1, 'the receiver saw exactly one TCP connection');
    assert.deepEqual(sessions[0]?.run, { connections: 1, items: 2002, bytes: summary?.bytes });
  });

  test('the same tree twice: already there, nothing sent; a changed file meets "exists" (3: the rest got through) unless --overwrite', async (t) => {
    const dir = await tempDir(t);
    const src = join(dir, 'tree');
    await makeTree(src, 40, 1024 * 1024);
    const out = join(dir, 'out');
    const first = await startReceiver(t, ['--out', out]);
    assert.equal((await run(t, ['send', `127.0.0.1:${first.port}`, src, '-r'], env(dir))).code, 0);

    const again = await run(t, ['send', `127.0.0.1:${first.port}`, src, '-r', '--json'], env(dir));
    assert.equal(again.code, 0, again.stderr.slice(0, 2000));
    const items = records(again.stdout).filter((r) => r.event === 'item');
    assert.equal(items.length, 42);
    // Files are already there; directories and empty files carry no bytes to find so.
    assert.ok(items.every((r) => r.bytesSent === 0 && (r.status === 'already-there' || r.bytes === 0)));
    assert.ok(items.filter((r) => r.status === 'already-there').length >= 30);
    assert.equal(records(again.stdout).find((r) => r.event === 'summary')?.confirmed, 42);

    await writeFile(join(src, 'd1', 'e1', 'f1.txt'), 'changed since the first run\n');
    const changed = await run(t, ['send', `127.0.0.1:${first.port}`, src, '-r', '--json'], env(dir));
    assert.equal(changed.code, ExitCode.Partial, changed.stderr.slice(0, 2000));
    const failed = records(changed.stdout).filter((r) => r.event === 'item' && r.status === 'failed');
    assert.deepEqual(
      failed.map((r) => [r.name, /exists/.test(String(r.message))]),
      [['tree/d1/e1/f1.txt', true]],
    );
    first.child.kill('SIGTERM');
    await first.exited;

    const replacing = await startReceiver(t, ['--out', out, '--overwrite']);
    const replaced = await run(t, ['send', `127.0.0.1:${replacing.port}`, src, '-r'], env(dir));
    assert.equal(replaced.code, 0, replaced.stderr.slice(0, 2000));
    assert.deepEqual(await snapshot(join(out, 'tree')), await snapshot(src));
  });

  test('receiver killed in the middle of a many-item job and restarted: each file once, identical', async (t) => {
    const dir = await tempDir(t);
    const src = join(dir, 'tree');
    await makeTree(src, 300, 8 * 1024 * 1024);
    const out = join(dir, 'out');
    const first = await startReceiver(t, ['--out', out]);
    const proxy = await FaultProxy.start(t, { target: first.port, rate: 4 * 1024 * 1024 });
    const sender = ackship(
      t,
      ['send', `127.0.0.1:${proxy.port}`, src, '-r', '--json', '--retries', '40', '--retry-delay', '0.05'],
      env(dir),
    );
    await proxy.waitForwarded(3 * 1024 * 1024);
    first.child.kill('SIGKILL');
    await first.exited;
    const second = await startReceiver(t, ['--out', out]);
    proxy.retarget(second.port);
    const sent = await sender.exited;
    assert.equal(sent.code, 0, sent.stderr.slice(0, 2000));
    assert.deepEqual(await snapshot(join(out, 'tree')), await snapshot(src));
    assert.deepEqual(await readdir(join(out, '.ackship', 'parts')), [], 'no partial is left over');
  });

  test('--connections 4 with a large file and small ones: identical, at most 4 connections', async (t) => {
    const dir = await tempDir(t);
    const src = join(dir, 'tree');
    await makeTree(src, 200, 64 * 1024 * 1024);
    const receiver = await startReceiver(t, ['--out', join(dir, 'out')]);
    const sent = await run(
      t,
      ['send', `127.0.0.1:${receiver.port}`, src, '-r', '--connections', '4', '--json'],
      env(dir),
    );
    assert.equal(sent.code, 0, sent.stderr.slice(0, 2000));
    const summary = records(sent.stdout).find((r) => r.event === 'summary');
    assert.ok((summary?.connections as number) >= 2 && (summary?.connections as number) <= 4);
    assert.deepEqual(await snapshot(join(dir, 'out', 'tree')), await snapshot(src));
  });

  test('symlinks are skipped with a warning, or refused with --no-skip', async (t) => {
    const dir = await tempDir(t);
    const src = join(dir, 'tree');
    await mkdir(src);
    await writeFile(join(src, 'real'), 'data');
    await symlink('/etc/hostname', join(src, 'link'));
    const receiver = await startReceiver(t, ['--out', join(dir, 'out')]);
    const refused = await run(t, ['send', `127.0.0.1:${receiver.port}`, src, '-r', '--no-skip'], env(dir));
    assert.equal(refused.code, ExitCode.NoInput);
    assert.match(refused.stderr, /link is a symlink/);
    const skipped = await run(t, ['send', `127.0.0.1:${receiver.port}`, `${src}/`, '-r'], env(dir));
    assert.equal(skipped.code, 0, skipped.stderr);
    assert.match(skipped.stderr, /skipping .*link: a symlink/);
    assert.deepEqual(await readdir(join(dir, 'out')).then((n) => n.filter((x) => x !== '.ackship')), [
      'real',
    ]);
  });
});
