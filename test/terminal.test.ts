// The real CLI in a real terminal (tmux), as a person sees it (issue 14): item lines above the
// progress bar, never on it; nothing of the bar left on the screen; the prompt below the output;
// lines no wider than the terminal, at 120 and at 60 columns.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import { BIN, hasCommand, startReceiver, tempDir } from './support/cli.js';
import { writeRandom } from './support/files.js';

const skip = hasCommand('tmux', '-V') ? false : 'tmux is not installed';

/** A shell in a detached tmux session of its own server, `columns` wide and 35 rows high. */
function terminal(t: TestContext, columns: number, cwd: string) {
  const socket = `ackship-test-${process.pid}-${columns}`;
  const tmux = (...args: string[]) => execFileSync('tmux', ['-L', socket, ...args], { encoding: 'utf8' });
  tmux(
    'new-session',
    '-d',
    '-x',
    String(columns),
    '-y',
    '35',
    '-c',
    cwd,
    'env',
    'PS1=$ ',
    'bash',
    '--norc',
    '--noprofile',
  );
  t.after(() => tmux('kill-server'));
  let runs = 0;
  /** The screen's lines (a wrapped line joined whole), trailing blanks cut, empty ones at the end dropped. */
  const screen = (): string[] => {
    const lines = tmux('capture-pane', '-p', '-J')
      .split('\n')
      .map((l) => l.trimEnd());
    while (lines.at(-1) === '') lines.pop();
    return lines;
  };
  return {
    /**
     * Types `command` and Enter, and returns once it has finished and the shell's next prompt
     * is drawn: the signal comes from the command line itself, a moment before bash prints the
     * prompt (tmux tells no event for that: polled, for at most 5 s).
     */
    run(command: string): void {
      const channel = `done-${runs++}`;
      tmux('send-keys', `${command}; tmux -L ${socket} wait-for -S ${channel}`, 'Enter');
      tmux('wait-for', channel);
      const pause = new Int32Array(new SharedArrayBuffer(4));
      for (let i = 0; i < 250 && screen().at(-1) !== '$'; i++) Atomics.wait(pause, 0, 0, 20);
    },
    screen,
    clear(): void {
      tmux('send-keys', 'clear', 'Enter');
      tmux('clear-history');
    },
    /** Types `keys` (tmux key names: text, Enter, C-d) into whatever runs now. */
    keys(...keys: string[]): void {
      tmux('send-keys', ...keys);
    },
    /** Types `command` and Enter without waiting; the returned function waits for it to finish. */
    start(command: string): () => void {
      const channel = `done-${runs++}`;
      tmux('send-keys', `${command}; tmux -L ${socket} wait-for -S ${channel}`, 'Enter');
      return () => tmux('wait-for', channel);
    },
  };
}

/** Resolves once `term`'s screen has a line matching `pattern` (tmux tells no event for it: polled). */
async function screenShows(term: ReturnType<typeof terminal>, pattern: RegExp): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (term.screen().some((l) => pattern.test(l))) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail(`never on the screen: ${pattern}: ${JSON.stringify(term.screen())}`);
}

/** Nothing of a progress bar: no bar glyphs, no percentage, no ETA. */
function assertNoDebris(screen: string[]): void {
  for (const line of screen)
    assert.doesNotMatch(line, /[█░]|\d+%|ETA/, `bar debris: ${JSON.stringify(screen)}`);
}

describe('in a terminal (tmux)', { skip }, () => {
  for (const columns of [120, 60]) {
    test(`${columns} columns: a file's confirmed line stays, the prompt is below it, no bar is left`, async (t) => {
      const dir = await tempDir(t);
      await writeRandom(join(dir, 'big.bin'), 64 * 1024 * 1024);
      const receiver = await startReceiver(t, ['--out', join(dir, 'out')]);
      const term = terminal(t, columns, dir);
      term.clear();
      term.run(
        `ACKSHIP_STATE_DIR=${join(dir, 'state')} ${process.execPath} ${BIN} send 127.0.0.1:${receiver.port} big.bin`,
      );
      const screen = term.screen();
      const confirmed = screen.findIndex((l) =>
        /^confirmed big\.bin \(64\.0 MiB, xxh64 [0-9a-f]{16}\) in /.test(l),
      );
      assert.ok(confirmed !== -1, `the confirmed line is on the screen: ${JSON.stringify(screen)}`);
      assert.equal(screen.at(-1), '$', `the prompt is the last line: ${JSON.stringify(screen)}`);
      assert.ok(screen.length - 1 > confirmed, 'the prompt is below the confirmed line');
      assertNoDebris(screen);
    });

    test(`${columns} columns: a tree shows its summary; with -v its item lines, whole, one per line; no bar is left`, async (t) => {
      const dir = await tempDir(t);
      await mkdir(join(dir, 'tree'));
      for (let i = 0; i < 200; i++)
        await writeFile(join(dir, 'tree', `file-with-a-longer-name-${i}.txt`), `${i}\n`.repeat(1000));
      const receiver = await startReceiver(t, ['--out', join(dir, 'out')]);
      const term = terminal(t, columns, dir);
      term.clear();
      const send = `${process.execPath} ${BIN} send 127.0.0.1:${receiver.port} -r tree`;
      // Without -v, a person sees the bar while it runs and then only the summary.
      term.run(`ACKSHIP_STATE_DIR=${join(dir, 'state')} ${send}`);
      const quiet = term.screen().filter((l) => !l.startsWith('$ '));
      assertNoDebris(quiet);
      assert.deepEqual(quiet.length, 2, JSON.stringify(quiet));
      assert.match(quiet[0] ?? '', /^200 of 200 items confirmed, /);
      // With -v, a line per item (under another name, so all are sent again).
      term.clear();
      term.run(`ACKSHIP_STATE_DIR=${join(dir, 'state')} ${send} --name again -v`);
      const screen = term.screen();
      assertNoDebris(screen);
      assert.equal(screen.at(-1), '$');
      assert.match(screen.at(-2) ?? '', /^200 of 200 items confirmed, /);
      // Every other line on the screen is one item line, whole: not cut, nothing written onto it.
      const items = screen.slice(0, -2).filter((l) => l !== '' && !l.startsWith('$ '));
      assert.ok(items.length >= 10, JSON.stringify(screen));
      for (const line of items)
        assert.match(
          line,
          /^confirmed again\/file-with-a-longer-name-\d+\.txt \([\d.]+ KiB, xxh64 [0-9a-f]{16}\) in [\d.]+ s$/,
        );
    });
  }

  test('send - with stdin a terminal says it reads the terminal, and sends what is typed', async (t) => {
    const dir = await tempDir(t);
    const receiver = await startReceiver(t, ['--out', join(dir, 'out')]);
    const term = terminal(t, 120, dir);
    term.clear();
    const finished = term.start(
      `ACKSHIP_STATE_DIR=${join(dir, 'state')} ${process.execPath} ${BIN} send 127.0.0.1:${receiver.port} - --name typed.txt`,
    );
    await screenShows(term, /^ackship: reading stdin from the terminal; end it with Ctrl-D/);
    term.keys('typed by hand', 'Enter', 'C-d');
    finished();
    assert.ok(
      term.screen().some((l) => /^confirmed typed\.txt \(14 B, /.test(l)),
      JSON.stringify(term.screen()),
    );
    assert.equal(await readFile(join(dir, 'out', 'typed.txt'), 'utf8'), 'typed by hand\n');
  });
});
