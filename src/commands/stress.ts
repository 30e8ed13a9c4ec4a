import { join } from 'node:path';
import { Flags } from '@oclif/core';
import { AckshipCommand, EXIT_STATUS_HELP } from '../cli/base-command.js';
import { secondsFlag, sizeFlag } from '../cli/flags.js';
import { StressLossError } from '../errors.js';
import { loadHasher } from '../hash.js';
import { parseAddress } from '../net-address.js';
import { MIN_MESSAGE_LEN } from '../stress/messages.js';
import { runInNamespaces } from '../stress/netns.js';
import { MODES, type Mode, runStress, runTarget, SCENARIOS, type StressRow } from '../stress/run-stress.js';

type Row = StressRow & { knobs?: string };

const COLUMNS: Array<[string, (r: Row) => string]> = [
  ['scenario', (r) => r.scenario],
  ['mode', (r) => r.mode],
  ['sent', (r) => String(r.sent)],
  ['believed', (r) => String(r.believed)],
  ['received', (r) => String(r.received)],
  ['lost silently', (r) => String(r.lostSilently)],
  ['errors', (r) => String(r.errors)],
  ['retries', (r) => String(r.retries)],
  ['connections', (r) => String(r.connections)],
  ['seconds', (r) => r.seconds.toFixed(1)],
];

function table(rows: Row[], colour: boolean): string {
  const columns: typeof COLUMNS = rows.some((r) => r.knobs)
    ? [['netns knobs', (r) => r.knobs ?? ''], ...COLUMNS]
    : COLUMNS;
  const text = columns.length - COLUMNS.length + 2; // left-aligned columns
  const cells = [columns.map(([name]) => name), ...rows.map((r) => columns.map(([, cell]) => cell(r)))];
  const widths = columns.map((_, i) => Math.max(...cells.map((row) => (row[i] as string).length)));
  return cells
    .map((row, n) => {
      const line = row
        .map((cell, i) => (i < text ? cell.padEnd(widths[i] as number) : cell.padStart(widths[i] as number)))
        .join('  ');
      const lost = n > 0 && (rows[n - 1] as StressRow).lostSilently > 0;
      return colour && lost ? `\u001b[31m${line}\u001b[0m` : line;
    })
    .join('\n');
}

/** Two or three sentences a person can act on. */
function explain(rows: Row[]): string {
  const naive = rows.filter((r) => r.mode === 'naive' || r.mode === 'halfclose');
  const ackship = rows.filter((r) => r.mode === 'ackship' || r.mode === 'ackship-mux');
  const naiveLost = naive.reduce((sum, r) => sum + r.lostSilently, 0);
  const ackshipLost = ackship.reduce((sum, r) => sum + r.lostSilently + r.duplicates, 0);
  const quiet = [...new Set(naive.filter((r) => r.lostSilently === 0).map((r) => r.scenario))].filter(
    (s) => !naive.some((r) => r.scenario === s && r.lostSilently > 0),
  );
  const lines = [
    naiveLost > 0
      ? `Without a protocol, ${naiveLost} messages were lost although their senders saw no error: the kernel acknowledged them, the receiving program never read them.`
      : 'Without a protocol, no silent loss was observed on this machine in these runs.',
    ackshipLost === 0
      ? 'With ackship nothing was lost or duplicated: a message counts only when the receiving program confirms it, and what was not confirmed was sent again.'
      : `ackship lost or duplicated ${ackshipLost} messages: that is a bug, please report it.`,
  ];
  const knobs = [...new Set(rows.map((r) => r.knobs).filter((k): k is string => k !== undefined))];
  if (knobs.length > 0) {
    const lossy = knobs.filter((k) => naive.some((r) => r.knobs === k && r.lostSilently > 0));
    lines.push(
      `In private network namespaces, silent loss happened with ${lossy.length > 0 ? lossy.join('; ') : 'no setting'}` +
        ` and not with ${knobs.filter((k) => !lossy.includes(k)).join('; ') || 'any other'}.`,
    );
  }
  if (quiet.length > 0)
    lines.push(`No loss observed here for: ${quiet.join(', ')} (this kernel did not drop those messages).`);
  return lines.join('\n');
}

export default class Stress extends AckshipCommand {
  static override description =
    `Runs the same messages, in each mode, against a receiver process whose trouble is real, and counts what the receiving program read and verified: not what a kernel acknowledged.

Modes: naive (connect, write, close), halfclose (also wait for the receiver to close), ackship (one connection per message, confirmed, retried), ackship-mux (the same over two long-lived connections).
Scenarios: backlog (listen backlog 2 and a slow accept), restart (the listener closes with connections queued, then comes back), crash (SIGKILL mid-run, then a restart), unread (every other connection closed after one 16 KiB read, with data unread).

${EXIT_STATUS_HELP}`;

  static override examples = [
    { command: '<%= config.bin %> <%= command.id %>', description: 'Every scenario in every mode.' },
    {
      command: '<%= config.bin %> <%= command.id %> --scenario restart --mode naive,ackship --json',
      description: 'One scenario, two modes, as NDJSON.',
    },
  ];

  static override flags = {
    concurrency: Flags.integer({
      description: 'Messages in flight at once (default: per scenario).',
      min: 1,
      max: 1000,
    }),
    count: Flags.integer({ description: 'Messages per run (default: per scenario).', min: 1, max: 100_000 }),
    mode: Flags.string({
      default: MODES.join(','),
      description: `Modes to run, comma-separated: ${MODES.join(', ')}.`,
    }),
    netns: Flags.boolean({
      description:
        'Run inside private network namespaces (root), once per setting of net.ipv4.tcp_syncookies and tcp_abort_on_overflow, to show which one matters.',
    }),
    scenario: Flags.option({
      description: 'Scenarios to run (repeatable; default: all).',
      multiple: true,
      options: SCENARIOS,
    })(),
    seconds: secondsFlag({ default: 60, description: 'Upper bound on each run, in seconds.' }),
    size: sizeFlag({ description: 'Bytes per message, at least 20 (default: per scenario).' }),
    target: Flags.string({
      description:
        'Probe a real receiver instead: HOST:PORT of an "ackship recv" started with --stress-sink (no trouble of ours is applied).',
      exclusive: ['netns', 'scenario'],
    }),
    'target-sink': Flags.integer({
      description:
        "Port of the receiver's --stress-sink, for the naive modes (default: the --target port + 1).",
      max: 65535,
      min: 1,
    }),
  };

  static override summary = 'Show, side by side, naive TCP losing messages silently and ackship losing none.';

  async run(): Promise<void> {
    const { flags } = await this.parse(Stress);
    const output = this.useOutput(flags);
    const modes = flags.mode.split(',').map((m) => m.trim());
    const unknown = modes.find((m) => !(MODES as readonly string[]).includes(m));
    if (unknown !== undefined) this.error(`unknown mode ${unknown} (modes: ${MODES.join(', ')})`);
    await loadHasher();
    const workload = {
      ...(flags.count !== undefined && { count: flags.count }),
      ...(flags.size !== undefined && { size: Math.max(MIN_MESSAGE_LEN, flags.size) }),
      ...(flags.concurrency !== undefined && { concurrency: flags.concurrency }),
    };
    const scenarios = flags.scenario ?? [...SCENARIOS];
    const progress = (scenario: string, mode: string) => {
      if (process.stderr.isTTY && !flags.quiet && !flags.json)
        process.stderr.write(`running ${scenario} / ${mode} ...\n`);
    };
    const target = flags.target === undefined ? undefined : parseAddress(flags.target);
    const rows: Row[] = target
      ? await runTarget({
          target,
          sink: { host: target.host, port: flags['target-sink'] ?? target.port + 1 },
          modes: modes as Mode[],
          workload,
          seconds: flags.seconds,
          signal: this.interrupted.signal,
          progress,
        })
      : flags.netns
        ? await runInNamespaces(
            join(this.config.root, 'bin', 'run.cjs'),
            [
              ...scenarios.flatMap((s) => ['--scenario', s]),
              '--mode',
              modes.join(','),
              '--seconds',
              String(flags.seconds),
              ...Object.entries(workload).flatMap(([k, v]) => [`--${k}`, String(v)]),
            ],
            this.interrupted.signal,
          )
        : await runStress({
            scenarios,
            modes: modes as Mode[],
            workload,
            seconds: flags.seconds,
            signal: this.interrupted.signal,
            progress,
            receiverScript: join(this.config.root, 'dist', 'src', 'stress', 'stress-receiver.js'),
          });
    for (const row of rows) output.event({ event: 'stress', ...row });
    if (!flags.json) {
      const colour = Boolean(process.stdout.isTTY) && process.env.NO_COLOR === undefined;
      process.stdout.write(`${table(rows, colour)}\n\n${explain(rows)}\n`);
    }
    const broken = rows.filter(
      (r) => (r.mode === 'ackship' || r.mode === 'ackship-mux') && r.lostSilently + r.duplicates > 0,
    );
    if (broken.length > 0) {
      this.exitWith(
        new StressLossError(
          `ackship lost or duplicated messages in ${broken.map((r) => `${r.scenario}/${r.mode}`).join(', ')}`,
        ),
        true,
      );
    }
  }
}
