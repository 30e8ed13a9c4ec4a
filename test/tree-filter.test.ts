// send -r --exclude/--include (issue 14): rsync's rules as README states them, on the pure
// filter and through the real CLI.
import assert from 'node:assert/strict';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { filterRules, treeFilter } from '../src/send/tree-filter.js';
import { run, startReceiver, tempDir } from './support/cli.js';

test('the first matching rule decides; no slash: any depth; a slash: from the top; a trailing slash: directories', () => {
  const keep = treeFilter(
    filterRules([
      '-r',
      '--include',
      'keep.tmp',
      '--exclude=*.tmp',
      '--exclude',
      'node_modules/',
      '--exclude',
      '/build/cache',
      'tree',
    ]),
  );
  assert.ok(keep);
  assert.equal(keep('a.txt', false), true, 'no rule matches: sent');
  assert.equal(keep('deep/down/x.tmp', false), false, '*.tmp at any depth');
  assert.equal(keep('deep/keep.tmp', false), true, 'the earlier --include wins');
  assert.equal(keep('src/node_modules', true), false, 'a directory named node_modules');
  assert.equal(keep('src/node_modules', false), true, 'a file of that name is no directory');
  assert.equal(keep('build/cache', true), false, 'anchored at the top');
  assert.equal(keep('x/build/cache', true), true, 'only at the top');
  assert.equal(keep('.hidden.tmp', false), false, '* matches dotfiles');
  assert.equal(treeFilter([]), undefined);
  assert.deepEqual(filterRules(['--exclude', 'a', '--', '--exclude', 'b']), [
    { include: false, pattern: 'a' },
  ]);
});

test('send -r --exclude/--include sends what the rules keep, and nothing under an excluded directory', async (t) => {
  const dir = await tempDir(t);
  const tree = join(dir, 'tree');
  for (const sub of ['src', 'src/node_modules/pkg', 'logs'])
    await mkdir(join(tree, sub), { recursive: true });
  for (const file of [
    'src/main.ts',
    'src/main.tmp',
    'src/node_modules/pkg/index.js',
    'logs/a.log',
    'logs/keep.log',
    'README',
  ])
    await writeFile(join(tree, file), file);
  const out = join(dir, 'out');
  const receiver = await startReceiver(t, ['--out', out]);
  const sent = await run(
    t,
    [
      'send',
      `127.0.0.1:${receiver.port}`,
      '-r',
      `${tree}/`,
      '--exclude',
      '*.tmp',
      '--include',
      'keep.log',
      '--exclude',
      'logs/*',
      '--exclude',
      'node_modules/',
    ],
    { env: { ACKSHIP_STATE_DIR: join(dir, 'state') } },
  );
  assert.equal(sent.code, 0, sent.stderr);
  const files = (await readdir(out, { recursive: true, withFileTypes: true }))
    .filter((e) => e.isFile() && !join(e.parentPath, e.name).includes('.ackship'))
    .map((e) => join(e.parentPath, e.name).slice(out.length + 1))
    .sort();
  assert.deepEqual(files, ['README', 'logs/keep.log', 'src/main.ts']);
  const refused = await run(t, [
    'send',
    `127.0.0.1:${receiver.port}`,
    join(tree, 'README'),
    '--exclude',
    'x',
  ]);
  assert.equal(refused.code, 64);
  assert.match(refused.stderr, /add -r/);
});
