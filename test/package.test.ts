// `npm pack` yields a package that installs and runs: what a user of the tarball gets.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
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
      "import { connect, send, serve, Refusal, RejectedError, type HandlerItem, type MessageAck, type SendResult } from 'ackship';",
      "const receiver = await serve({ out: process.argv[2] as string, listen: '127.0.0.1:0' });",
      'const result: SendResult = await send("127.0.0.1:" + receiver.address.port, [{ name: "a.txt", data: Buffer.from("typed") }], { stateDir: process.argv[3] as string });',
      'await receiver.close();',
      'const app = await serve({ listen: "127.0.0.1:0", handler: async (item: HandlerItem) => { if (item.size > 10) throw new Refusal("too big"); return item.bytes(); } });',
      'await using client = await connect("127.0.0.1:" + app.address.port, { maxInFlight: 8 });',
      'const ack: MessageAck = await client.send({ id: "one", data: Buffer.from("echo"), meta: { k: "v" } });',
      'await client.close();',
      'await app.close();',
      'console.log(result.items[0]?.name, RejectedError.name, ack.reply?.toString());',
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
      '--lib',
      'es2022,esnext.disposable',
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
  assert.equal(consumer.stdout.trim(), 'a.txt RejectedError echo');
});

test('the README examples run, and README shows them verbatim', async () => {
  const readme = await readFile(join(root, 'README.md'), 'utf8');
  const roundTrip = await exec(process.execPath, [join(root, 'examples', 'round-trip.mjs')]);
  assert.match(roundTrip.stdout, /^sender: hello\.txt confirmed, xxh64 [0-9a-f]{16}$/m);
  assert.match(roundTrip.stdout, /^on disk: hello, durable world$/m);
  const messages = await exec(process.execPath, [join(root, 'examples', 'messages.mjs')]);
  assert.equal(
    messages.stdout,
    [
      'reply: {"sum":42} (duplicate: false)',
      'again: {"sum":42} (duplicate: true)',
      /^refused: .*unknown tenant other$/m.exec(messages.stdout)?.[0],
      'connections opened: 1',
      '',
    ].join('\n'),
  );
  for (const example of ['round-trip.mjs', 'messages.mjs']) {
    const source = await readFile(join(root, 'examples', example), 'utf8');
    assert.ok(readme.includes(source.trim()), `README shows ${example} verbatim`);
  }
});

// The setting: several processes, 4 MiB chunks and calls, an overloaded receiver.
test('examples/cluster.mjs: nothing lost, nothing handled twice, one connection per sender process', async () => {
  const { stdout } = await exec(process.execPath, [join(root, 'examples', 'cluster.mjs'), '3', '2', '100']);
  assert.match(stdout, /^306 messages \(6 x 4 MiB, 300 calls\) from 3 processes in /m);
  assert.match(stdout, /^lost: 0, handled twice: 0$/m);
  assert.match(stdout, /^TCP connections opened: 3 \(/m);
});

// README's first command runs this: it must end 0 and find every copy identical. (It ended 143:
// under set -e, its cleanup's wait for the receiver it had stopped ended the script.)
test('the demo (npm run demo) exits 0, finds every received file identical, and leaves no receiver running', async () => {
  const { stdout } = await exec('bash', [join(root, 'scripts', 'demo.sh')], { cwd: root, timeout: 120_000 });
  for (const line of ['random.bin: identical', 'numbers.txt: identical', 'unpacked random.bin: identical'])
    assert.ok(stdout.includes(line), `${line}: ${stdout}`);
  // Its receiver ran through a shell function: stopping the function's subshell left node
  // serving a deleted directory, one more after every run.
  const inbox = /starting a receiver on (\S+)/.exec(stdout)?.[1];
  assert.ok(inbox, stdout);
  assert.deepEqual(await processesMentioning(inbox), []);
});

/** Pids of the processes whose command line holds `text`. */
async function processesMentioning(text: string): Promise<string[]> {
  const pids = (await readdir('/proc')).filter((name) => /^\d+$/.test(name));
  const lines = await Promise.all(
    pids.map((pid) => readFile(join('/proc', pid, 'cmdline'), 'utf8').catch(() => '')),
  );
  return pids.filter((_, i) => lines[i]?.includes(text));
}
