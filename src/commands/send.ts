import { createReadStream, fstatSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { Args, Flags } from '@oclif/core';
import { AckshipCommand, EXIT_STATUS_HELP } from '../cli/base-command.js';
import { rateFlag, secondsFlag, sizeFlag } from '../cli/flags.js';
import type { Output } from '../cli/output.js';
import { createProgress, progressRecords } from '../cli/progress.js';
import { formatBytes } from '../cli/units.js';
import { DEFAULTS } from '../defaults.js';
import { PartialError, RejectedError, UsageError } from '../errors.js';
import { hashHex } from '../hash.js';
import { MAX_CHUNK_LEN } from '../protocol/constants.js';
import { printableName } from '../protocol/names.js';
import { readPem, resolveSecret } from '../secret.js';
import type { ItemOutcome } from '../send/job-tally.js';
import type { JobSummary } from '../send/send-job.js';
import type { QueryVerdict } from '../send/sender.js';
import type { SendItem, Source } from '../send/sources.js';
import { transfer } from '../send/transfer.js';
import { filterRules } from '../send/tree-filter.js';

export default class Send extends AckshipCommand {
  static override args = {
    target: Args.string({
      description: 'The receiver, as HOST[:PORT] (port 7420 by default; IPv6 as [::1]:7420).',
      required: true,
    }),
    path: Args.string({
      description:
        'What to send, one or more: files, directories with -r, or - for stdin. After --, a path that starts with - is a path.',
    }),
  };

  static override description =
    `Sends each PATH (or stdin, given as -) to a receiver started with "ackship recv", and exits 0 only when the receiver confirmed every item: length and xxHash64 checked, fsynced, and renamed into place.

Broken connections, resets and silences are retried with exponential backoff; a retry resumes from what the receiver already holds durably. An item whose confirmation was lost is confirmed again, never stored twice, also when you run the same send again later.

${EXIT_STATUS_HELP}`;

  static override examples = [
    {
      command: '<%= config.bin %> <%= command.id %> backup.example:7420 dump.sql',
      description: 'Send a file.',
    },
    {
      command: 'tar c . | <%= config.bin %> <%= command.id %> 127.0.0.1 - --name site.tar',
      description: 'Send stdin under a name.',
    },
    {
      command: '<%= config.bin %> <%= command.id %> [::1]:7420 big.iso --json',
      description: 'Send over IPv6 and print NDJSON.',
    },
  ];

  static override flags = {
    'connect-timeout': secondsFlag({
      default: DEFAULTS.connectTimeoutSeconds,
      description:
        "Seconds to connect and get the receiver's hello. A peer that takes the connection and stays silent twice in a row is not ackship (exit 76).",
      env: 'ACKSHIP_CONNECT_TIMEOUT',
    }),
    connections: Flags.integer({
      default: DEFAULTS.connections,
      description: 'TCP connections to spread the items over.',
      env: 'ACKSHIP_CONNECTIONS',
      max: 16,
      min: 1,
    }),
    'dry-run': Flags.boolean({
      description:
        'Send nothing: ask the receiver what it would do with each item (send it, already there, refuse it, and why) and report that; exit 65 if some would be refused. Needs a receiver of protocol 4.',
      env: 'ACKSHIP_DRY_RUN',
    }),
    exclude: Flags.string({
      description:
        'With -r, leave out what matches this glob (repeatable; with --include, the first rule that matches wins, as in rsync). No slash: a name at any depth; a slash: the path below the directory sent; a trailing slash: directories only.',
      multiple: true,
    }),
    include: Flags.string({
      description: 'With -r, send what matches this glob even if a later --exclude matches it (repeatable).',
      multiple: true,
    }),
    'limit-rate': rateFlag({
      description:
        "Send at most this many payload bytes a second over the whole run, as curl's --limit-rate (100K, 1M, 2.5M/s).",
      env: 'ACKSHIP_LIMIT_RATE',
    }),
    name: Flags.string({
      description:
        'Name of the item on the receiver (default: the file name, or "stdin"); with -r, of the top directory.',
    }),
    'no-skip': Flags.boolean({
      description: 'With -r, refuse symlinks and special files instead of skipping them with a warning.',
      env: 'ACKSHIP_NO_SKIP',
    }),
    recursive: Flags.boolean({
      char: 'r',
      description: 'Send directories and all they hold ("dir/" sends only what dir holds, like rsync).',
    }),
    retries: Flags.integer({
      default: DEFAULTS.retries,
      description:
        'Failed attempts in a row before an item counts as not confirmed (a stream that moved on between failures starts counting again).',
      env: 'ACKSHIP_RETRIES',
      min: 0,
    }),
    'retry-max-time': secondsFlag({
      default: DEFAULTS.retryMaxTimeSeconds,
      description:
        "No retry starts once an item's attempts have been failing this long in a row, in seconds (a stream that moves on between failures starts counting again).",
      env: 'ACKSHIP_RETRY_MAX_TIME',
    }),
    'retry-delay': secondsFlag({
      default: DEFAULTS.retryDelaySeconds,
      description: 'First delay between attempts, in seconds; it doubles each time, up to 5 s, with jitter.',
      env: 'ACKSHIP_RETRY_DELAY',
    }),
    'secret-file': Flags.string({
      description:
        'File holding a shared secret the receiver requires (only its owner may read it); ACKSHIP_SECRET also gives one.',
      env: 'ACKSHIP_SECRET_FILE',
    }),
    spool: Flags.boolean({
      description:
        'Read stdin to a private temp file before sending it, as one item of known length, instead of streaming it.',
      env: 'ACKSHIP_SPOOL',
    }),
    tls: Flags.boolean({
      description: "Connect over TLS, trusting the system's CAs (implied by --tls-ca and --tls-fingerprint).",
      env: 'ACKSHIP_TLS',
    }),
    verbose: Flags.boolean({
      char: 'v',
      description:
        'On a terminal, print a line per item of a run of several (without it: the bar, failures and the summary; a pipe or file always gets every line).',
      env: 'ACKSHIP_VERBOSE',
    }),
    'tls-ca': Flags.string({
      description:
        "Connect over TLS, trusting this CA bundle (PEM), e.g. the receiver's self-signed certificate.",
      env: 'ACKSHIP_TLS_CA',
    }),
    'tls-fingerprint': Flags.string({
      description:
        'Connect over TLS to the receiver whose certificate has this SHA-256 fingerprint (hex, colons allowed), whoever signed it.',
      env: 'ACKSHIP_TLS_FINGERPRINT',
    }),
    timeout: secondsFlag({
      default: DEFAULTS.timeoutSeconds,
      description: 'Seconds of silence from the receiver after which an attempt is given up and retried.',
      env: 'ACKSHIP_TIMEOUT',
    }),
    window: sizeFlag({
      default: DEFAULTS.windowBytes,
      description:
        'Most bytes of stdin held in memory until the receiver has them durably (e.g. 64M); when full, stdin is not read.',
      env: 'ACKSHIP_WINDOW',
    }),
  };

  static override strict = false;

  static override usage =
    '<%= command.id %> HOST[:PORT] PATH...|- [-r] [--dry-run] [--no-skip] [--exclude GLOB] [--include GLOB] [--name NAME] [--connections N] [--connect-timeout SECS] [--timeout SECS] [--retries N] [--retry-delay SECS] [--retry-max-time SECS] [--spool] [--window SIZE] [--limit-rate RATE] [--secret-file PATH] [--tls | --tls-ca PEM | --tls-fingerprint SHA256] [-v] [--json] [--quiet]';

  static override summary = 'Send files or stdin and wait until the receiver confirms each one.';

  async run(): Promise<void> {
    const { args, argv, flags } = await this.parse(Send);
    const paths = (argv as string[]).slice(1);
    // What follows `--` is a path, whatever it looks like (`send host -- -dash.txt`).
    const optionsEnd = this.argv.indexOf('--');
    const options = optionsEnd === -1 ? this.argv : this.argv.slice(0, optionsEnd);
    const unknownFlag = paths.find((p) => p.startsWith('-') && p !== '-' && options.includes(p));
    if (unknownFlag !== undefined) throw this.unknownFlag(unknownFlag);
    if (flags.name !== undefined && paths.length > 1) throw new UsageError('--name needs exactly one PATH');
    // From argv, not flags.exclude/flags.include: oclif keeps them apart, and their order decides.
    const filter = filterRules(this.argv);
    if (filter.length > 0 && !flags.recursive)
      throw new UsageError('--exclude and --include choose within trees: add -r');
    if (paths.filter((p) => p === '-').length > 1) throw new UsageError('stdin (-) can be sent only once');
    const items = paths.map(
      (path): SendItem =>
        path === '-'
          ? { name: flags.name ?? 'stdin', data: stdin() }
          : { path, ...(flags.name !== undefined && { name: flags.name }) },
    );
    // A dry run moves no bytes: there is nothing for a bar to show.
    const bar = createProgress(!flags.quiet && !flags.json && !flags['dry-run']);
    const output = this.useOutput(flags, bar.above(process.stdout), bar.above(process.stderr));
    // Under --json (where the bar is off) a script gets the same as progress records.
    const progress = flags.json ? progressRecords((fields) => output.event(fields)) : bar;
    if (paths.includes('-') && process.stdin.isTTY)
      output.note('ackship: reading stdin from the terminal; end it with Ctrl-D (or pipe something in)');
    const secret = await resolveSecret(flags['secret-file'], process.env);
    const tlsCa = flags['tls-ca'] === undefined ? undefined : await readPem(flags['tls-ca'], 'CA bundle');
    const tlsPin = flags['tls-fingerprint'];
    const tls =
      flags.tls || tlsCa !== undefined || tlsPin !== undefined
        ? { ...(tlsCa !== undefined && { ca: tlsCa }), ...(tlsPin !== undefined && { fingerprint: tlsPin }) }
        : undefined;
    let itemLines = true;
    const seen = new Set<string>();
    const once = (key: string) => !seen.has(key) && Boolean(seen.add(key));
    try {
      const { sources, summary, error } = await transfer(
        args.target,
        items,
        {
          connections: flags.connections,
          dryRun: flags['dry-run'],
          timeout: flags.timeout,
          retries: flags.retries,
          retryDelay: flags['retry-delay'],
          connectTimeout: flags['connect-timeout'],
          retryMaxTime: flags['retry-max-time'],
          ...(flags['limit-rate'] !== undefined && { limitRate: flags['limit-rate'] }),
          recursive: flags.recursive,
          noSkip: flags['no-skip'],
          ...(filter.length > 0 && { filter }),
          spool: flags.spool,
          window: flags.window,
          ...(secret !== undefined && { secret }),
          ...(tls !== undefined && { tls }),
          signal: this.interrupted.signal,
        },
        {
          skipped: (path, what) => {
            output.note(`ackship: skipping ${printableName(path)}: ${what}`);
            output.event({ event: 'skip', path, reason: what });
          },
          resolved: (all) => {
            itemLines = flags.verbose || !process.stdout.isTTY || all.length <= 1;
            const bytes = all.some((s) => s.stream !== undefined)
              ? undefined
              : all.reduce((sum, s) => sum + s.size, 0);
            progress.start(all.length, bytes);
          },
          progress: (source, sent) => progress.sent(printableName(source.name), sent),
          retry: (source, attempt, err, delayMs) => {
            const delaySeconds = Math.round(delayMs) / 1000;
            output.event({ event: 'retry', name: source.name, attempt, delaySeconds, message: err.message });
            // Items in flight together fail together: one line per attempt and cause, not per item.
            if (once(`${attempt} ${err.message}`))
              output.note(
                `ackship: ${printableName(source.name)}: attempt ${attempt} failed: ${err.message}; retrying in ${delaySeconds.toFixed(1)} s`,
              );
          },
          finished: (outcome) => {
            if (outcome.status === 'confirmed') progress.confirmed();
            report(output, outcome, once, itemLines);
          },
        },
      );
      progress.stop();
      if (sources.length > 1 || flags.json) reportSummary(output, summary);
      // An item's own failure was reported as it happened; a partial run gets its summary line.
      if (error !== undefined) this.exitWith(error, error instanceof PartialError);
    } finally {
      progress.stop();
    }
  }
}

/** --dry-run: what the receiver said it would do with one item. */
function reportVerdict(
  output: Output,
  verdict: QueryVerdict,
  base: Record<string, unknown>,
  source: Source,
): void {
  const name = printableName(source.name);
  const what = source.stream !== undefined ? 'a stream' : formatBytes(source.size);
  const fields = {
    ...base,
    ...(source.stream === undefined && { bytes: source.size }),
    status: verdict.type,
    ...(verdict.type === 'would-refuse' && { message: verdict.reason }),
  };
  output.record(fields, verdictLine(verdict, name, what));
}

function verdictLine(verdict: QueryVerdict, name: string, what: string): string {
  switch (verdict.type) {
    case 'would-send':
      return `would send ${name} (${what})`;
    case 'already-there':
      return `already there ${name} (${what}): nothing to send`;
    case 'differs':
      return `would send ${name} (${what}): the receiver holds other bytes under this name, and refuses them unless it runs with --overwrite`;
    case 'would-refuse':
      return `would be refused ${name}: ${verdict.reason}`;
  }
}

function reportSummary(output: Output, summary: JobSummary): void {
  if (summary.dryRun !== undefined) {
    const counts = summary.dryRun;
    output.record(
      { event: 'summary', ...summary, seconds: Math.round(summary.seconds * 1000) / 1000 },
      `dry run: of ${summary.items} items, ${counts.wouldSend} would be sent, ${counts.alreadyThere} already there, ` +
        (counts.differs > 0 ? `${counts.differs} differ from what the receiver holds, ` : '') +
        `${counts.wouldRefuse} would be refused; nothing was sent`,
    );
    return;
  }
  const seconds = Math.round(summary.seconds * 1000) / 1000;
  const mbPerSecond = Math.round((summary.bytes / 1e6 / Math.max(summary.seconds, 1e-6)) * 10) / 10;
  output.record(
    { event: 'summary', ...summary, seconds, mbPerSecond },
    `${summary.confirmed} of ${summary.items} items confirmed` +
      (summary.failed > 0 ? `, ${summary.failed} failed` : '') +
      (summary.notStarted > 0 ? `, ${summary.notStarted} not started` : '') +
      `, ${formatBytes(summary.bytes)} in ${seconds.toFixed(2)} s ` +
      `(${mbPerSecond} MB/s) over ${summary.connections} connection${summary.connections === 1 ? '' : 's'}, ` +
      `${summary.retries} ${summary.retries === 1 ? 'retry' : 'retries'}`,
  );
}

/**
 * stdin, as a stream. Redirected from a file it is read a CHUNK at a time, from where its
 * offset stands: process.stdin reads a file 64 KiB at a time, and each read became a CHUNK
 * frame of its own, with its own hash and ACK (1 GiB: 16,384 frames instead of 1,024).
 */
function stdin(): Readable {
  if (!stdinIsFile()) return process.stdin;
  return createReadStream('', { fd: 0, highWaterMark: MAX_CHUNK_LEN, autoClose: false });
}

function stdinIsFile(): boolean {
  try {
    return fstatSync(0).isFile();
  } catch {
    return false; // closed: process.stdin reports that, as it always did
  }
}

/**
 * Reports one item's outcome. `lines`: whether a confirmed item gets its text line (a person at
 * a terminal does not want 5,000 of them scrolling by; a pipe or a log does). Failures always.
 */
function report(output: Output, outcome: ItemOutcome, once: (key: string) => boolean, lines: boolean): void {
  // Made for nothing, a confirmed item's record and line cost about 5% of a small file's CPU.
  if (outcome.status === 'confirmed' && output.silent) return;
  const { source, seconds } = outcome;
  const name = printableName(source.name);
  const base = {
    event: 'item',
    name: source.name,
    path: source.label,
    seconds: Math.round(seconds * 1000) / 1000,
  };
  if (outcome.status === 'not-started') {
    output.event({
      ...base,
      ...(source.stream === undefined && { bytes: source.size }),
      status: 'not-started',
    });
    return;
  }
  if (outcome.status === 'failed') {
    // A stream's length is known only once it ended and was confirmed.
    const record = { ...base, ...(source.stream === undefined && { bytes: source.size }), status: 'failed' };
    // A rejection concerns its item; a lost receiver is one cause, told once on stderr.
    if (outcome.error instanceof RejectedError || once(outcome.error.message))
      output.failure(outcome.error, record);
    else output.failureRecord(outcome.error, record);
    return;
  }
  if (outcome.status === 'checked') {
    reportVerdict(output, outcome.verdict, base, source);
    return;
  }
  const { size, hash, attempts, bytesSent, resumedFrom, alreadyThere } = outcome.delivery;
  // The receiver held every byte already (a re-run, PROTOCOL.md §7.3): confirmed, and nothing
  // sent, unless a small file's bytes went with its OFFER (§6.3).
  const status = alreadyThere ? 'already-there' : 'confirmed';
  // Not `{ ...base, bytes }`: on Node 20's V8 that gets a shape of its own for each item.
  const extra = { bytes: size, status, hash: hashHex(hash), attempts, bytesSent, resumedFrom };
  const fields = Object.assign({}, base, extra);
  if (!lines) {
    output.event(fields);
    return;
  }
  output.record(
    fields,
    alreadyThere
      ? `already there ${name} (${formatBytes(size)}, xxh64 ${hashHex(hash)}): confirmed, ` +
          (bytesSent === 0 ? 'nothing sent' : `its ${formatBytes(bytesSent)} sent with the offer`)
      : `confirmed ${name} (${formatBytes(size)}, xxh64 ${hashHex(hash)}) in ${seconds.toFixed(2)} s` +
          (attempts > 1 ? ` after ${attempts} attempts` : '') +
          (resumedFrom > 0 ? `, resumed at ${formatBytes(resumedFrom)}` : ''),
  );
}
