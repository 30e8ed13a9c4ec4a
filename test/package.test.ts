// `npm pack` yields a package that installs and runs: what a user of the tarball gets.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
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

  // A consumer's view: a TypeScript program against the installed package type-checks and runs.
  await writeFile(join(app, 'package.json'), JSON.stringify({ type: 'module', private: true }));
  await writeFile(
    join(app, 'consumer.ts'),
    [
      "import { send, serve, RejectedError, type SendResult } from 'ackship';",
      "const receiver = await serve({ out: process.argv[2] as string, listen: '127.0.0.1:0' });",
      'const result: SendResult = await send("127.0.0.1:" + receiver.address.port, [{ name: "a.txt", data: Buffer.from("typed") }], { stateDir: process.argv[3] as string });',
      'await receiver.close();',
      'console.log(result.items[0]?.name, RejectedError.name);',
    ].join('\n'),
  );
  const tsc = join(root, 'node_modules', '.bin', 'tsc');
  await exec(
    tsc,
    [
      '--strict',
      '--module',
      'nodenext',
      '--target',
      'es2022',
      '--skipLibCheck',
      '--typeRoots',
      join(root, 'node_modules', '@types'),
      '--types',
      'node',
      'consumer.ts',
    ],
    { cwd: app },
  );
  const consumer = await exec(process.execPath, [
    join(app, 'consumer.js'),
    join(dir, 'inbox'),
    join(dir, 'state'),
  ]);
  assert.equal(consumer.stdout.trim(), 'a.txt RejectedError');
});

test('the README example runs, and README shows it verbatim', async () => {
  const example = await exec(process.execPath, [join(root, 'examples', 'round-trip.mjs')]);
  assert.match(example.stdout, /^sender: hello\.txt confirmed, xxh64 [0-9a-f]{16}$/m);
  assert.match(example.stdout, /^on disk: hello, durable world$/m);
  const readme = await readFile(join(root, 'README.md'), 'utf8');
  const source = await readFile(join(root, 'examples', 'round-trip.mjs'), 'utf8');
  assert.ok(readme.includes(source.trim()), 'README shows the tested example verbatim');
});

// README's first command runs this: it must end 0 and find every copy identical. (It ended 143:
// under set -e, its cleanup's wait for the receiver it had stopped ended the script.)
test('the demo (npm run demo) exits 0 and finds every received file identical', async () => {
  const { stdout } = await exec('bash', [join(root, 'scripts', 'demo.sh')], { cwd: root, timeout: 120_000 });
  for (const line of ['random.bin: identical', 'numbers.txt: identical', 'unpacked random.bin: identical'])
    assert.ok(stdout.includes(line), `${line}: ${stdout}`);
});
