// The CLI as a user of git, npm or curl expects it (issue 14): -h and `help`, suggestions for
// typos (usage errors, 64), `--` ends the options, defaults in help as one would type them.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ExitCode } from '../src/errors.js';
import { run, startReceiver, tempDir } from './support/cli.js';

describe('CLI conventions', () => {
  test('-h, --help and `ackship help` show the help and exit 0', async (t) => {
    for (const args of [['-h'], ['--help'], ['help'], ['send', '-h'], ['help', 'send'], ['recv', '-h']]) {
      const shown = await run(t, args);
      assert.equal(shown.code, 0, `${args.join(' ')}: ${shown.stderr}`);
      assert.match(shown.stdout, /USAGE/, args.join(' '));
    }
    assert.match((await run(t, ['help', 'send'])).stdout, /Send files or stdin/);
  });

  test('a mistyped command or flag is a usage error (64) that says what was meant', async (t) => {
    const command = await run(t, ['sned', 'host', 'file']);
    assert.equal(command.code, ExitCode.Usage, command.stderr);
    assert.match(command.stderr, /^ackship: unknown command "sned"; did you mean "send"\?/m);
    const flag = await run(t, ['send', '--retires', '3', '127.0.0.1:1', 'f']);
    assert.equal(flag.code, ExitCode.Usage, flag.stderr);
    assert.match(flag.stderr, /^ackship: unknown flag --retires; did you mean --retries\?/m);
  });

  test('-- ends the options: a file named -dash.txt is sent', async (t) => {
    const dir = await tempDir(t);
    await writeFile(join(dir, '-dash.txt'), 'a name like a flag');
    const receiver = await startReceiver(t, ['--out', join(dir, 'out')]);
    const sent = await run(t, ['send', `127.0.0.1:${receiver.port}`, '--', '-dash.txt'], {
      cwd: dir,
      env: { ACKSHIP_STATE_DIR: join(dir, 'state') },
    });
    assert.equal(sent.code, 0, sent.stderr);
    assert.equal(await readFile(join(dir, 'out', '-dash.txt'), 'utf8'), 'a name like a flag');
  });

  test('help documents PATH and shows defaults in human units', async (t) => {
    const send = (await run(t, ['send', '--help'])).stdout;
    assert.match(send, /\[PATH\.\.\.\]\s+What to send/);
    assert.match(send, /--window=<value>\s+\[default: 16MiB,/);
    assert.match(send, /--timeout=<value>\s+\[default: 30s,/);
    const recv = (await run(t, ['recv', '--help'])).stdout;
    assert.match(recv, /--partial-ttl=<value>\s+\[default: 7d,/);
    assert.doesNotMatch(send + recv, /16777216|604800|2592000/);
  });
});
