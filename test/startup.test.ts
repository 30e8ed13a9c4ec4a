// How the CLI's process starts, seen from outside: what it loads, how many threads it runs.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { run, startReceiver, tempDir } from './support/cli.js';

const LOADER = fileURLToPath(new URL('../../bin/oclif-loader.cjs', import.meta.url));
/** The commands the build bundled, each to be loaded with its code cache. */
const COMMANDS = (await readdir(fileURLToPath(new URL('../cli/commands', import.meta.url))))
  .filter((f) => f.endsWith('.cjs'))
  .map((f) => f.slice(0, -'.cjs'.length));

test('a command starts from the bundle: no module is loaded from node_modules', async (t) => {
  // Loading @oclif/core's 474 modules one by one took ~0.1 s of every start (scripts/bundle.mjs).
  for (const args of [['--version'], ['send', '--help']]) {
    const shown = await run(t, args, { env: { NODE_DEBUG: 'module' } });
    assert.equal(shown.code, 0, shown.stderr);
    assert.doesNotMatch(shown.stderr, /load "[^"]*\/node_modules\//, args.join(' '));
    assert.match(shown.stderr, /load built-in module/, 'NODE_DEBUG=module shows what is loaded');
  }
});

test('the bundled oclif and each command load with the code caches that the build made', async () => {
  // As bin/run.cjs loads them: node without flags. A cache V8 rejects is no error, only slower.
  const { stdout } = await promisify(execFile)(process.execPath, [
    '-e',
    `const { loadOclif, preloadCommand } = require(${JSON.stringify(LOADER)});
     const shown = { oclif: loadOclif().script.cachedDataRejected };
     for (const id of ${JSON.stringify(COMMANDS)}) shown[id] = preloadCommand([id]).script.cachedDataRejected;
     console.log(JSON.stringify(shown));`,
  ]);
  assert.deepEqual(
    JSON.parse(stdout),
    Object.fromEntries(['oclif', ...COMMANDS].map((name) => [name, false])),
  );
});

test('the command a run names is the one oclif runs, loaded once, ahead of it', async (t) => {
  // oclif requires the bundle that bin/run.cjs loaded (with its cache), not a second copy.
  const shown = await run(t, ['send', '--help'], { env: { NODE_DEBUG: 'module' } });
  assert.equal(shown.code, 0, shown.stderr);
  assert.doesNotMatch(
    shown.stderr,
    /load "[^"]*\/dist\/cli\/commands\/send\.cjs"/,
    'not compiled by require',
  );
  assert.match(shown.stdout, /^Send files or stdin/m);
});

test('the receiver runs 16 threads for blocking calls, unless UV_THREADPOOL_SIZE says otherwise', async (t) => {
  const dir = await tempDir(t);
  const threadsOf = async (name: string, env: NodeJS.ProcessEnv) => {
    const receiver = await startReceiver(t, ['--out', join(dir, name)], { env });
    const threads = (await readdir(`/proc/${receiver.child.pid}/task`)).length;
    receiver.signal('SIGTERM');
    await receiver.exited;
    return threads;
  };
  // libuv starts its whole pool at the first blocking call, long before the receiver listens.
  const byDefault = await threadsOf('default', {});
  const four = await threadsOf('four', { UV_THREADPOOL_SIZE: '4' });
  assert.equal(byDefault - four, 16 - 4, `${byDefault} threads by default, ${four} with a pool of 4`);
});
