// What both commands share: the --json/--quiet flags, the signal that Ctrl-C aborts, and the
// one place where an error becomes an exit status (oclif's own catch ignores the exit code
// under --json, so this one sets process.exitCode from the table in errors.ts itself).
import { setMaxListeners } from 'node:events';
import type { Writable } from 'node:stream';
import { Command, Errors, Flags } from '@oclif/core';
import { AckshipError, EXIT_CODE_HELP, InterruptedError, UsageError } from '../errors.js';
import { Output } from './output.js';
import { closest } from './suggest.js';

/** The exit-status table, for the end of every command's --help. */
export const EXIT_STATUS_HELP = `EXIT STATUS\n${EXIT_CODE_HELP.map(([code, text]) => `${String(code).padEnd(5)}${text}`).join('\n')}`;

/** How oclif words a flag value its parser refused, whatever threw. */
const FLAG_PARSE_ERROR = /^Parsing --([\w-]+)\s+([\s\S]*?)\s*See more help with --help\s*$/;

/** Where a flag's value came from, as the user wrote it: `--timeout 0` or `ACKSHIP_TIMEOUT=5x`. */
function flagSource(name: string, env: string | undefined, argv: string[]): string {
  const at = argv.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (at !== -1) {
    const token = argv[at] as string;
    return `--${name} ${token.includes('=') ? token.slice(token.indexOf('=') + 1) : (argv[at + 1] ?? '')}`;
  }
  return env !== undefined && process.env[env] !== undefined ? `${env}=${process.env[env]}` : `--${name}`;
}

export abstract class AckshipCommand extends Command {
  static override baseFlags = {
    json: Flags.boolean({
      description: 'Print one JSON object per line (NDJSON) instead of text.',
      env: 'ACKSHIP_JSON',
    }),
    quiet: Flags.boolean({
      char: 'q',
      description: 'Print nothing but failures (and, under --json, the records).',
      env: 'ACKSHIP_QUIET',
    }),
  };

  /** Aborted by SIGINT or SIGTERM, with an InterruptedError as the reason. */
  protected readonly interrupted = new AbortController();
  protected output: Output | undefined;

  override async init(): Promise<void> {
    await super.init();
    // Every item in flight waits on this signal (its backoff, its connection): no leak warning.
    setMaxListeners(0, this.interrupted.signal);
    const onSignal = (signal: 'SIGINT' | 'SIGTERM') => this.interrupted.abort(new InterruptedError(signal));
    // `once`: a second Ctrl-C falls through to Node's default and ends the process at once.
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    // A reader of our messages that went away (a closed terminal, `| head -1`) must not end a
    // receiver or a transfer: the exit status still tells. stdout as data (recv --out -) is
    // watched where it is written.
    for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});
  }

  /** The command's output, by its --json and --quiet flags; `records` is where results go. */
  protected useOutput(
    flags: { json: boolean; quiet: boolean },
    records: Writable = process.stdout,
    stderr: Writable = process.stderr,
  ): Output {
    this.output = new Output({ json: flags.json, quiet: flags.quiet, records, stderr });
    return this.output;
  }

  override async catch(err: unknown): Promise<void> {
    this.exitWith(this.#toAckshipError(err), true);
  }

  /** A usage error for a flag this command does not have, with the one that was likely meant. */
  protected unknownFlag(token: string): UsageError {
    const names = Object.keys({ ...this.ctor.baseFlags, ...this.ctor.flags });
    const guess = closest(token.replace(/^-+/, '').replace(/=.*$/, ''), names);
    const hint = guess === undefined ? '' : `; did you mean --${guess}?`;
    return new UsageError(`unknown flag ${token}${hint} (see ackship ${this.id ?? ''} --help)`);
  }

  #toAckshipError(err: unknown): AckshipError {
    if (err instanceof AckshipError) return err;
    const message = err instanceof Error ? err.message : String(err);
    // A value a flag's parser refused, from our parsers (plain errors) or oclif's own: a usage
    // error naming where the value came from, so an env var is not blamed on the flag.
    const refused = FLAG_PARSE_ERROR.exec(message);
    if (refused !== null) {
      const [, name, why] = refused as unknown as [string, string, string];
      const env = (this.ctor.flags?.[name] as { env?: string } | undefined)?.env;
      return new UsageError(
        `${flagSource(name, env, this.argv)}: ${why.replace(/\s+/g, ' ').replace(/;$/, '')}`,
      );
    }
    const unknown = /Nonexistent flags?: (\S+?),?(?:\s|$)/.exec(message);
    if (unknown !== null) return this.unknownFlag(unknown[1] as string);
    // oclif's other parse and validation errors: a bad flag or argument.
    if (err instanceof Errors.CLIError) return new UsageError(message.replace(/\s+/g, ' ').trim());
    return new AckshipError(`internal error: ${message}`);
  }

  /** Sets the exit status from the table; `report` prints the failure (unless it was already). */
  protected exitWith(error: AckshipError, report: boolean): void {
    process.exitCode = error.exitCode;
    if (!report) return;
    const json = this.argv.includes('--json') || /^(1|true|yes)$/i.test(process.env.ACKSHIP_JSON ?? '');
    const output = this.output ?? this.useOutput({ json, quiet: false });
    output.failure(error);
  }
}
