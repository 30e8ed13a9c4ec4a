// `recv --exec CMD`: the shell user's handler. Each item is piped to a new `sh -c CMD` on its
// stdin, with its id, name, size and meta in the environment; the item is confirmed only if
// CMD exits 0 after reading it. CMD never sees the end of its input unless the payload checked
// out: on a bad checksum or a vanished sender it is killed first, so that a `psql \copy` or a
// `tar x` does not commit half an item.
import { type ChildProcess, spawn } from 'node:child_process';
import type { Writable } from 'node:stream';
import type { Handler, HandlerItem } from './handler-sink.js';
import { Refusal } from './refusal.js';

/** sysexits' EX_TEMPFAIL: CMD says "try again later", and the sender retries. */
const TEMPFAIL = 75;
/** How much of CMD's stderr is kept for the refusal's reason. */
const STDERR_TAIL = 4096;

/** The item as environment variables: ACKSHIP_ID, ACKSHIP_NAME, ..., ACKSHIP_META_<KEY>. */
export function itemEnvironment(item: HandlerItem): Record<string, string> {
  const env: Record<string, string> = {
    ACKSHIP_ID: item.id,
    ACKSHIP_NAME: item.name,
    ACKSHIP_SIZE: String(item.size),
    ACKSHIP_PEER: item.peer,
    ACKSHIP_REDELIVERED: item.redelivered ? '1' : '0',
  };
  for (const [key, value] of Object.entries(item.meta))
    env[`ACKSHIP_META_${key.toUpperCase().replace(/[^A-Z0-9_]/g, '_')}`] = value;
  return env;
}

/** The last non-empty line of `text`. */
function lastLine(text: string): string | undefined {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .pop();
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    child.kill('SIGKILL');
  }
}

/** `log`: where CMD's stdout and stderr go (the receiver's own stdout carries its records). */
export function execHandler(command: string, log: Writable): Handler {
  return (item) =>
    new Promise<void>((resolve, reject) => {
      const child = spawn('/bin/sh', ['-c', command], {
        stdio: ['pipe', 'pipe', 'pipe'],
        env: { ...process.env, ...itemEnvironment(item) },
        detached: true,
      });
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => log.write(chunk));
      child.stderr.on('data', (chunk: Buffer) => {
        log.write(chunk);
        stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_TAIL);
      });
      // CMD may exit without reading all its input: that is its choice, not a failure to report.
      child.stdin.on('error', () => {});
      const input = item.stream();
      input.on('data', (chunk: Buffer) => {
        if (!child.stdin.write(chunk)) input.pause();
      });
      child.stdin.on('drain', () => input.resume());
      input.on('end', () => child.stdin.end());
      input.on('error', (err) => {
        killGroup(child); // before its stdin closes: it must never take half an item for all of it
        child.stdin.destroy();
        reject(err);
      });
      item.signal.addEventListener('abort', () => killGroup(child), { once: true });
      child.on('error', (err) => reject(new Error(`cannot run ${command}: ${err.message}`)));
      child.on('close', (code, signal) => {
        input.destroy();
        if (code === 0) return resolve();
        const what = signal !== null ? `was killed by ${signal}` : `exited with status ${code}`;
        const reason = lastLine(stderr) ?? `${command} ${what}`;
        reject(new Refusal(reason, { retryable: code === TEMPFAIL }));
      });
    });
}
