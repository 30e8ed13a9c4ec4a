import { join } from 'node:path';
import { Flags } from '@oclif/core';
import { AckshipCommand, EXIT_STATUS_HELP } from '../cli/base-command.js';
import { secondsFlag, sizeFlag } from '../cli/flags.js';
import type { Output } from '../cli/output.js';
import { formatBytes } from '../cli/units.js';
import { DEFAULTS } from '../defaults.js';
import {
  type AckshipError,
  LocalIoError,
  PartialError,
  ProtocolError,
  RejectedError,
  ShuttingDownError,
  UnconfirmedError,
  UsageError,
} from '../errors.js';
import { execHandler } from '../handler/exec-handler.js';
import { hashHex } from '../hash.js';
import { serve } from '../index.js';
import { formatAddress, isLoopback, parseAddress } from '../net-address.js';
import { printableName, STATE_DIR_NAME } from '../protocol/names.js';
import type { RunTotals } from '../recv/receiver.js';
import type { ItemReport, SessionReport } from '../recv/session.js';
import { readPem, resolveSecret } from '../secret.js';
import { StressSink } from '../stress/sink.js';
import type { ServerTls } from '../transport.js';

/** `--once`: a session decides the run when it offered something and nothing is left to resume. */
function decidesOnce(report: SessionReport): boolean {
  const unsettled = report.offered - report.confirmed - report.rejected;
  return report.offered > 0 && (unsettled === 0 || report.error instanceof ProtocolError);
}

/** `--once`: the run's error, from the session that decided it. */
function onceError(report: SessionReport): AckshipError | undefined {
  if (report.error instanceof ProtocolError) return report.error;
  if (report.rejected === 0) return undefined;
  const what = `${report.confirmed} of ${report.offered} items confirmed, ${report.rejected} rejected`;
  return report.confirmed > 0 ? new PartialError(what) : new RejectedError(what, 0);
}

export default class Recv extends AckshipCommand {
  static override description =
    `Listens for senders and stores each item inside DIR only after checking its length and xxHash64, fsyncing it, renaming it into place and recording it as confirmed; then it confirms to the sender. Partial data stays in DIR/.ackship/ so that a sender can resume after a broken connection or a receiver restart.

Prints "listening on HOST:PORT" on stderr once it accepts, and one line per confirmed item on stdout (on stderr with --out -).

${EXIT_STATUS_HELP}`;

  static override examples = [
    {
      command: '<%= config.bin %> <%= command.id %> --listen 0.0.0.0:7420 --out /srv/inbox',
      description: 'Serve senders on every interface.',
    },
    {
      command: `<%= config.bin %> <%= command.id %> --exec 'psql -c "\\copy t from stdin"'`,
      description:
        'Pipe each item to a command; confirm it to its sender only if the command exits 0 (a retry is never run twice).',
    },
    {
      command: '<%= config.bin %> <%= command.id %> --out - | tar x',
      description:
        'Receive one item on stdout (implies --once): a stream chunk by chunk as each is verified, a file once it is whole.',
    },
  ];

  static override flags = {
    'dedup-window': secondsFlag({
      default: DEFAULTS.dedupWindowSeconds,
      description:
        'How long a confirmed transfer id is remembered (default 30d): a retry within it is confirmed again, one after it is received as a new item.',
      env: 'ACKSHIP_DEDUP_WINDOW',
    }),
    'idle-timeout': secondsFlag({
      default: DEFAULTS.idleTimeoutSeconds,
      description: 'Seconds a sender may stay silent before its session is ended (it can resume).',
      env: 'ACKSHIP_IDLE_TIMEOUT',
    }),
    'header-timeout': secondsFlag({
      default: DEFAULTS.headerTimeoutSeconds,
      description:
        'Seconds a hello or a frame other than DATA/CHUNK may take to arrive whole; a peer that trickles bytes is cut off.',
      env: 'ACKSHIP_HEADER_TIMEOUT',
    }),
    exec: Flags.string({
      description:
        "Pipe each new item to `sh -c CMD` on its stdin (ACKSHIP_ID, ACKSHIP_NAME, ACKSHIP_SIZE and ACKSHIP_META_<KEY> in its environment; its output goes to stderr) and confirm it only if CMD exits 0; otherwise the sender is refused with CMD's last stderr line (exit 75 asks it to retry). DIR then holds only the dedup records, so a retry is never run twice.",
      env: 'ACKSHIP_EXEC',
    }),
    'exec-concurrency': Flags.integer({
      default: 4,
      description: 'With --exec, commands running at once; later items wait (and so do their senders).',
      env: 'ACKSHIP_EXEC_CONCURRENCY',
      min: 1,
    }),
    'exec-timeout': secondsFlag({
      default: DEFAULTS.handlerTimeoutSeconds,
      description: 'With --exec, seconds one command may run; past it, it is killed and the sender retries.',
      env: 'ACKSHIP_EXEC_TIMEOUT',
    }),
    insecure: Flags.boolean({
      description:
        'Listen on an address other than loopback without a shared secret or TLS: anyone who can reach it may send.',
      env: 'ACKSHIP_INSECURE',
    }),
    listen: Flags.string({
      default: DEFAULTS.listen,
      description: 'Address to listen on, HOST:PORT; port 0 picks a free port.',
      env: 'ACKSHIP_LISTEN',
    }),
    'max-connections': Flags.integer({
      default: DEFAULTS.maxConnections,
      description: 'Connections served at once; one more is told to retry later.',
      env: 'ACKSHIP_MAX_CONNECTIONS',
      min: 1,
    }),
    'max-items': Flags.integer({
      default: DEFAULTS.maxItemsPerConnection,
      description: 'Items one connection may offer; past it the sender goes on over a new connection.',
      env: 'ACKSHIP_MAX_ITEMS',
      min: 1,
    }),
    'max-name': Flags.integer({
      default: DEFAULTS.maxNameLength,
      description: 'Longest item name accepted, in UTF-8 bytes.',
      env: 'ACKSHIP_MAX_NAME',
      max: DEFAULTS.maxNameLength,
      min: 1,
    }),
    'max-size': sizeFlag({
      description: 'Largest item accepted (e.g. 10G); larger offers are rejected before any data.',
      env: 'ACKSHIP_MAX_SIZE',
    }),
    once: Flags.boolean({
      description:
        'Exit after the first sender session that settled all it offered; the exit status says how. A sender whose connection broke has --idle-timeout seconds to come back and resume.',
      env: 'ACKSHIP_ONCE',
    }),
    out: Flags.string({
      default: '.',
      description: 'Directory to store items in (created if missing), or - for stdout (implies --once).',
      env: 'ACKSHIP_OUT',
    }),
    overwrite: Flags.boolean({
      description: 'Replace existing files (atomically); without it an existing name is rejected.',
      env: 'ACKSHIP_OVERWRITE',
    }),
    'partial-ttl': secondsFlag({
      default: DEFAULTS.partialTtlSeconds,
      description:
        'How long after its last write a partial that no sender resumed is deleted (default 7d; e.g. 12h); checked at start and hourly.',
      env: 'ACKSHIP_PARTIAL_TTL',
    }),
    'secret-file': Flags.string({
      description:
        'File holding a shared secret every sender must prove it knows (only its owner may read it); ACKSHIP_SECRET also gives one.',
      env: 'ACKSHIP_SECRET_FILE',
    }),
    spool: Flags.boolean({
      description:
        'With --out -, write a stream to stdout only once all of it arrived and was verified (all or nothing), instead of chunk by chunk.',
      env: 'ACKSHIP_SPOOL',
    }),
    'tls-cert': Flags.string({
      dependsOn: ['tls-key'],
      description: 'Serve over TLS with this certificate (PEM); give --tls-key too.',
      env: 'ACKSHIP_TLS_CERT',
    }),
    'tls-key': Flags.string({
      dependsOn: ['tls-cert'],
      description: 'The private key (PEM) of --tls-cert.',
      env: 'ACKSHIP_TLS_KEY',
    }),
    'stress-sink': Flags.integer({
      description:
        'Also open a plain-TCP sink on this port (same host as --listen) for the naive modes of "ackship stress --target".',
      env: 'ACKSHIP_STRESS_SINK',
      max: 65535,
      min: 0,
    }),
  };

  static override summary = 'Receive items, verify them, store them durably, and confirm each to its sender.';

  async run(): Promise<void> {
    const { flags } = await this.parse(Recv);
    const toStdout = flags.out === '-';
    if (flags.exec !== undefined && (toStdout || flags.overwrite || flags.spool)) {
      throw new UsageError('--exec hands items to a command: it takes no --out -, --overwrite or --spool');
    }
    const once = flags.once || toStdout;
    const output = this.useOutput(flags, toStdout ? process.stderr : process.stdout);
    const listen = parseAddress(flags.listen, true);
    const secret = await resolveSecret(flags['secret-file'], process.env);
    const tls = await readServerTls(flags['tls-cert'], flags['tls-key']);
    if (secret === undefined && tls === undefined && !isLoopback(listen.host) && !flags.insecure) {
      throw new UsageError(
        `refusing to listen on ${formatAddress(listen)} without a shared secret or TLS: anyone who reaches it could write to ${flags.out}; give --secret-file (or ACKSHIP_SECRET), --tls-cert and --tls-key, or --insecure`,
      );
    }
    const sinkPort = flags['stress-sink'];
    const sink = sinkPort === undefined ? undefined : new StressSink();
    const sinkAt = await sink?.listen({ host: listen.host, port: sinkPort as number }).catch((err: Error) => {
      throw new LocalIoError(`cannot open the stress sink: ${err.message}`);
    });
    const destination =
      flags.exec === undefined
        ? { out: toStdout ? process.stdout : flags.out, overwrite: flags.overwrite, spool: flags.spool }
        : {
            handler: execHandler(flags.exec, process.stderr),
            stateDir: join(flags.out, STATE_DIR_NAME, 'exec'),
            maxInFlight: flags['exec-concurrency'],
            handlerTimeout: flags['exec-timeout'],
          };
    const receiver = await serve({
      ...destination,
      listen: flags.listen,
      idleTimeout: flags['idle-timeout'],
      headerTimeout: flags['header-timeout'],
      maxConnections: flags['max-connections'],
      maxItems: flags['max-items'],
      maxNameLength: flags['max-name'],
      ...(secret !== undefined && { secret }),
      ...(tls !== undefined && { tls }),
      partialTtl: flags['partial-ttl'],
      dedupWindow: flags['dedup-window'],
      ...(flags['max-size'] !== undefined && { maxSize: flags['max-size'] }),
    }).catch(async (err: unknown) => {
      await sink?.close();
      throw err;
    });
    // With --once, a sender that broke off mid-item has one idle timeout to come back.
    const idleMs = flags['idle-timeout'] * 1000;
    let open = 0;
    let abandoned: NodeJS.Timeout | undefined;
    const decided = new Promise<SessionReport | AckshipError>((resolve) => {
      receiver.on('connection', () => {
        open++;
        clearTimeout(abandoned);
      });
      receiver.on('session', (report, totals) => {
        open--;
        reportSession(output, report, totals);
        if (!once) return;
        if (decidesOnce(report)) resolve(report);
        else if (report.offered > 0 && open === 0) {
          abandoned = setTimeout(
            () =>
              resolve(
                new UnconfirmedError(
                  `the sender did not come back within ${flags['idle-timeout']} s to finish what it offered${stdoutSoFar()}`,
                ),
              ),
            idleMs,
          );
        }
      });
    });
    const stdoutSoFar = () => (toStdout ? `; ${receiver.bytesOut} bytes were written to stdout` : '');
    receiver.on('confirmed', (item) => reportConfirmed(output, item));
    receiver.on('rejected', (item) =>
      output.failure(
        new RejectedError(`${item.peer}: rejected ${printableName(item.name)}: ${item.reason}`, 0),
        {
          name: item.name,
          peer: item.peer,
        },
      ),
    );
    process.stderr.write(`listening on ${formatAddress(receiver.address)}\n`);
    output.event({ event: 'listening', host: receiver.address.host, port: receiver.address.port });
    if (sinkAt !== undefined) process.stderr.write(`stress sink on ${formatAddress(sinkAt)}\n`);
    const signal = this.interrupted.signal;
    const interrupted = new Promise<'interrupted'>((resolve) => {
      signal.addEventListener('abort', () => resolve('interrupted'), { once: true });
    });
    const ended = await Promise.race([decided, interrupted]);
    clearTimeout(abandoned);
    await Promise.all([receiver.close(), sink?.close()]);
    if (ended === 'interrupted') throw signal.reason;
    if (ended instanceof Error) throw ended;
    const error = onceError(ended);
    if (error !== undefined) {
      error.message += stdoutSoFar();
      this.exitWith(error, true);
    }
  }
}

function reportConfirmed(output: Output, item: ItemReport): void {
  output.record(
    {
      event: 'confirmed',
      name: item.name,
      bytes: item.size,
      hash: hashHex(item.hash),
      peer: item.peer,
      again: item.again,
    },
    `confirmed ${printableName(item.name)} (${formatBytes(item.size)}, xxh64 ${hashHex(item.hash)}) from ${item.peer}` +
      (item.again ? ' (again: a retry of an item already stored)' : ''),
  );
}

function reportSession(output: Output, report: SessionReport, totals: RunTotals): void {
  const { session, peer, offered, confirmed, rejected, bytes } = report;
  // Cut short by our own shutdown: no failure of the session, and the signal is reported once.
  const shutdown = report.error instanceof ShuttingDownError;
  output.event({
    event: 'session',
    session,
    peer,
    offered,
    confirmed,
    rejected,
    bytes,
    run: totals,
    ...(shutdown && { ended: 'shutdown' }),
  });
  if (shutdown) return;
  if (report.error instanceof ProtocolError || report.error instanceof LocalIoError) {
    output.failure(report.error, { peer });
  } else if (report.error !== undefined) {
    output.note(`ackship: ${peer}: ${report.error.message}`);
  }
}

async function readServerTls(
  cert: string | undefined,
  key: string | undefined,
): Promise<ServerTls | undefined> {
  if (cert === undefined || key === undefined) return undefined;
  return { cert: await readPem(cert, 'certificate'), key: await readPem(key, 'key') };
}
