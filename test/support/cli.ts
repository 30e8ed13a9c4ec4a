// Runs the real CLI (bin/run.cjs) as child processes, as a user would, with per-test temp dirs.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../../bin/run.cjs', import.meta.url));

/** A temp dir removed when the test ends. */
export async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ackship-test-'));
  // Hooks run in the order they were added, so a receiver started later may still be placing an
  // item while this runs: rm retries a directory that filled again under it (ENOTEMPTY).
  t.after(() => rm(dir, { recursive: true, force: true, maxRetries: 5 }));
  return dir;
}

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Running {
  child: ChildProcess;
  /** Signals the process (under a wrapper: the wrapper and all it runs). */
  signal(sig: NodeJS.Signals): void;
  /** Output so far. */
  readonly stdout: string;
  readonly stderr: string;
  exited: Promise<Finished>;
  stdoutBytes(): Buffer;
  /** Resolves when stderr (or stdout) contains `pattern`; rejects if the process exits first. */
  waitFor(pattern: RegExp, stream?: 'stderr' | 'stdout'): Promise<RegExpMatchArray>;
  /** Resolves once `condition` holds after some output; rejects if the process exits first. */
  waitUntil(condition: () => boolean, what?: string): Promise<void>;
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  stdin?: Buffer | Readable;
  /** A command to run ackship under, such as ['strace', '-f', ...]. */
  wrap?: string[];
  /** Where it runs, for relative paths. */
  cwd?: string;
}

/** Starts `ackship ARGS`; the child is killed when the test ends. */
export function ackship(
  t: TestContext,
  args: string[],
  options: SpawnOptions = {},
): Running & { stdoutBytes(): Buffer } {
  const [command, ...prefix] = [...(options.wrap ?? []), process.execPath];
  const child = spawn(command as string, [...prefix, BIN, ...args], {
    env: { ...process.env, ...options.env },
    ...(options.cwd !== undefined && { cwd: options.cwd }),
    stdio: ['pipe', 'pipe', 'pipe'],
    // Under a wrapper (strace), the wrapper's tracee dies with it only when killed as a group.
    detached: options.wrap !== undefined,
  });
  // Under a wrapper, the whole group: the wrapper and what it runs.
  const signal = (sig: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    if (options.wrap !== undefined) process.kill(-(child.pid as number), sig);
    else child.kill(sig);
  };
  t.after(() => signal('SIGKILL'));
  const out: Buffer[] = [];
  let stderr = '';
  const watchers: Array<() => void> = [];
  child.stdout?.on('data', (chunk: Buffer) => {
    out.push(chunk);
    for (const w of watchers) w();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    for (const w of watchers) w();
  });
  if (Buffer.isBuffer(options.stdin)) child.stdin?.end(options.stdin);
  else if (options.stdin) {
    child.stdin?.on('error', () => {}); // the child may exit before it read everything
    options.stdin.pipe(child.stdin as Writable);
  } else child.stdin?.end();
  const exited = new Promise<Finished>((resolve) => {
    child.on('close', (code, signal) =>
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr }),
    );
  });
  const running: Running = {
    child,
    signal,
    get stdout() {
      return Buffer.concat(out).toString();
    },
    get stderr() {
      return stderr;
    },
    stdoutBytes: () => Buffer.concat(out),
    exited,
    waitFor(pattern: RegExp, stream: 'stderr' | 'stdout' = 'stderr') {
      const text = () => (stream === 'stderr' ? stderr : Buffer.concat(out).toString());
      let match: RegExpMatchArray | null = null;
      return running
        .waitUntil(() => {
          match = text().match(pattern);
          return match !== null;
        }, `${pattern}`)
        .then(() => match as RegExpMatchArray);
    },
    waitUntil(condition: () => boolean, what = 'a condition') {
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (!condition()) return;
          watchers.splice(watchers.indexOf(check), 1);
          resolve();
        };
        watchers.push(check);
        check();
        void exited.then((f) =>
          reject(new Error(`exited (${f.code ?? f.signal}) before ${what}: ${f.stderr}`)),
        );
      });
    },
  };
  return running;
}

/** Runs `ackship ARGS` to the end. */
export function run(t: TestContext, args: string[], options: SpawnOptions = {}): Promise<Finished> {
  return ackship(t, args, options).exited;
}

export interface StartedReceiver extends Running {
  port: number;
}

/** Starts `ackship recv` on 127.0.0.1 port 0 and waits for its "listening on" line. */
export async function startReceiver(
  t: TestContext,
  args: string[],
  options: SpawnOptions = {},
): Promise<StartedReceiver> {
  const running = ackship(t, ['recv', '--listen', '127.0.0.1:0', ...args], options);
  const [, port] = await running.waitFor(/listening on 127\.0\.0\.1:(\d+)/);
  return Object.assign(running, { port: Number(port) });
}

/** The `item` records of a --json send, in the order they came (retries and progress left out). */
export function itemRecords(stdout: string): Array<Record<string, unknown>> {
  return records(stdout).filter((r) => r.event === 'item');
}

/** NDJSON lines of a --json run. */
export function records(stdout: string): Array<Record<string, unknown>> {
  return stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** Whether a system tool runs here, for tests that need one and skip, saying why, without it. */
export function hasCommand(command: string, ...args: string[]): boolean {
  try {
    execFileSync(command, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
