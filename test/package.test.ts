// `npm pack` yields a package that installs and runs: what a user of the tarball gets.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { tempDir } from './support/cli.js';

const exec = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));

test('the packed tarball installs and its ackship binary runs', async (t) => {
  const dir = await tempDir(t);
  // --ignore-scripts: dist/ is already built by the test command; prepack would rebuild it.
  const { stdout } = await exec('npm', ['pack', '--ignore-scripts', '--pack-destination', dir, '--json'], {
    cwd: root,
  });
  const [packed] = JSON.parse(stdout) as Array<{ filename: string }>;
  assert.ok(packed);
  const app = join(dir, 'app');
  await exec('npm', ['install', '--prefix', app, '--no-audit', '--no-fund', join(dir, packed.filename)]);
  const help = await exec(join(app, 'node_modules', '.bin', 'ackship'), ['--help']);
  assert.match(help.stdout, /send\s+Send files or stdin/);
  assert.match(help.stdout, /recv\s+Receive items/);
  const version = await exec(join(app, 'node_modules', '.bin', 'ackship'), ['--version']);
  assert.match(version.stdout, /^ackship\/\d+\.\d+\.\d+ /);
});
