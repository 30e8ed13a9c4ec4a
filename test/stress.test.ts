// `ackship stress` at small, bounded sizes: the naive modes lose messages silently where this
// kernel drops them, the ackship modes never lose or duplicate one, and the counts add up.
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { describe, test } from 'node:test';
import { records, run, startReceiver, tempDir } from './support/cli.js';

type Row = Record<string, number | string>;

function checkRows(rows: Row[]): void {
  for (const row of rows) {
    const where = `${row.scenario}/${row.mode}`;
    assert.equal(
      row.sent,
      (row.believed as number) + (row.errors as number),
      `${where}: sent = believed + errors`,
    );
    assert.ok((row.lostSilently as number) <= (row.believed as number), where);
    assert.ok((row.received as number) <= (row.sent as number), where);
    if (String(row.mode).startsWith('ackship')) {
      assert.equal(row.lostSilently, 0, `${where} lost nothing`);
      assert.equal(row.duplicates, 0, `${where} duplicated nothing`);
      assert.equal(row.received, row.sent, `${where} delivered everything`);
    }
  }
}

describe('ackship stress', () => {
  for (const [scenario, extra] of [
    ['restart', []],
    ['crash', []],
    ['backlog', ['--count', '200']],
  ] as const) {
    test(`${scenario}: naive loses messages silently, ackship loses none`, async (t) => {
      const result = await run(t, ['stress', '--scenario', scenario, '--json', ...extra]);
      assert.equal(result.code, 0, result.stderr);
      const rows = records(result.stdout).filter((r) => r.event === 'stress') as Row[];
      assert.deepEqual(
        rows.map((r) => r.mode),
        ['naive', 'halfclose', 'ackship', 'ackship-mux'],
      );
      checkRows(rows);
      const naive = rows.find((r) => r.mode === 'naive') as Row;
      assert.ok((naive.lostSilently as number) > 0, `naive lost ${naive.lostSilently}`);
      assert.ok((naive.believed as number) > (naive.received as number));
      const mux = rows.find((r) => r.mode === 'ackship-mux') as Row;
      assert.ok((mux.connections as number) <= 6, `ackship-mux used ${mux.connections} connections`);
    });
  }

  test('unread with messages smaller than one read: no loss observed, and the report says so', async (t) => {
    const result = await run(t, [
      'stress',
      '--scenario',
      'unread',
      '--size',
      '100',
      '--count',
      '60',
      '--mode',
      'naive,ackship',
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^unread\s+naive\s+60\s+60\s+60\s+0\s/m);
    assert.match(result.stdout, /no silent loss was observed on this machine/);
    assert.match(result.stdout, /No loss observed here for: unread/);
  });

  test('unread with 64 KiB messages: naive loses the connections closed with data unread', async (t) => {
    const result = await run(t, ['stress', '--scenario', 'unread', '--count', '60', '--json']);
    assert.equal(result.code, 0, result.stderr);
    const rows = records(result.stdout).filter((r) => r.event === 'stress') as Row[];
    checkRows(rows);
    assert.ok(((rows.find((r) => r.mode === 'naive') as Row).lostSilently as number) > 0);
  });
});

describe('ackship stress --netns', () => {
  test('shows that SYN cookies make the backlog loss silent, and removes its namespaces', async (t) => {
    const probe = await run(t, [
      'stress',
      '--netns',
      '--scenario',
      'backlog',
      '--mode',
      'naive',
      '--count',
      '1',
    ]);
    if (probe.code !== 0) {
      t.skip(`network namespaces are not available here: ${probe.stderr.trim()}`);
      return;
    }
    const result = await run(t, [
      'stress',
      '--netns',
      '--scenario',
      'backlog',
      '--mode',
      'naive,ackship-mux',
      '--count',
      '150',
      '--json',
    ]);
    assert.equal(result.code, 0, result.stderr);
    const rows = records(result.stdout).filter((r) => r.event === 'stress') as Row[];
    assert.equal(rows.length, 8);
    checkRows(rows);
    const naive = (knobs: string) => rows.find((r) => r.mode === 'naive' && r.knobs === knobs) as Row;
    assert.ok((naive('syncookies=1 abort_on_overflow=0').lostSilently as number) > 0);
    assert.equal(naive('syncookies=0 abort_on_overflow=0').lostSilently, 0);
    const { execFileSync } = await import('node:child_process');
    assert.doesNotMatch(execFileSync('ip', ['netns', 'list']).toString(), /ackship-stress-/);
  });
});

describe('ackship stress --target', () => {
  test('probes a receiver started by the test, with its plain sink for the naive modes', async (t) => {
    const dir = await tempDir(t);
    const receiver = await startReceiver(t, ['--out', dir, '--stress-sink', '0', '--quiet']);
    const [, sinkPort] = await receiver.waitFor(/stress sink on 127\.0\.0\.1:(\d+)/);
    const result = await run(t, [
      'stress',
      '--target',
      `127.0.0.1:${receiver.port}`,
      '--target-sink',
      sinkPort as string,
      '--count',
      '50',
      '--json',
    ]);
    assert.equal(result.code, 0, result.stderr);
    const rows = records(result.stdout).filter((r) => r.event === 'stress') as Row[];
    assert.deepEqual(
      rows.map((r) => `${r.scenario}/${r.mode}`),
      ['target/naive', 'target/halfclose', 'target/ackship', 'target/ackship-mux'],
    );
    checkRows(rows);
    for (const row of rows)
      assert.equal(row.received, 50, `${row.mode}: the receiver reported every message`);
    const stored = await readdir(dir);
    assert.equal(stored.filter((n) => n.startsWith('stress-')).length, 2, 'one directory per ackship run');
  });
});
