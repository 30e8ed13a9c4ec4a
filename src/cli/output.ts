// Where a command's words go. Records (one per item, NDJSON under --json) go to `records`;
// notes and failures go to stderr, one line each, with names made safe to print.
import type { Writable } from 'node:stream';
import type { AckshipError } from '../errors.js';
import { escapeControls } from '../protocol/names.js';

export interface OutputOptions {
  json: boolean;
  quiet: boolean;
  /** stdout, or stderr when stdout carries the data (`recv --out -`). */
  records: Writable;
  stderr: Writable;
}

export class Output {
  readonly #options: OutputOptions;

  constructor(options: OutputOptions) {
    this.#options = options;
  }

  get json(): boolean {
    return this.#options.json;
  }

  /** --quiet without --json: records and events go nowhere, so they need not be made. */
  get silent(): boolean {
    return this.#options.quiet && !this.#options.json;
  }

  /** One result: `fields` as a JSON line under --json, else `text` unless --quiet. */
  record(fields: Record<string, unknown>, text: string): void {
    if (this.#options.json) this.#options.records.write(`${JSON.stringify(fields)}\n`);
    else if (!this.#options.quiet) this.#options.records.write(`${text}\n`);
  }

  /** A record only a script wants (counters, addresses): under --json, else nothing. */
  event(fields: Record<string, unknown>): void {
    if (this.#options.json) this.#options.records.write(`${JSON.stringify(fields)}\n`);
  }

  /** Information a person at a terminal wants and a script does not: stderr, not under --quiet. */
  note(text: string): void {
    if (!this.#options.quiet) this.#options.stderr.write(`${text}\n`);
  }

  /** A failure: always one line on stderr, and a record under --json. */
  failure(error: AckshipError, fields: Record<string, unknown> = {}): void {
    this.#options.stderr.write(`ackship: ${oneLine(error.message)}\n`);
    this.failureRecord(error, fields);
  }

  /** Only the record of a failure whose cause stderr has already told. */
  failureRecord(error: AckshipError, fields: Record<string, unknown> = {}): void {
    this.event({
      event: 'error',
      ...fields,
      code: error.code,
      exitCode: error.exitCode,
      message: error.message,
    });
  }
}

/** Messages end up in logs line by line: keep each to one, with no raw control characters (a peer's text may carry terminal escapes). */
export function oneLine(text: string): string {
  return escapeControls(text.replace(/\s*\n\s*/g, '; ').trim());
}
