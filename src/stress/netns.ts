// `ackship stress --netns` (root): the same runs inside private network namespaces, each with
// its own loopback and its own TCP knobs, to show which kernel setting makes the loss happen.
// Each namespace is removed afterwards, also when the run fails or is interrupted.
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { promisify } from 'node:util';
import { UsageError } from '../errors.js';
import type { StressRow } from './run-stress.js';

const exec = promisify(execFile);

export interface Knobs {
  /** net.ipv4.tcp_syncookies */
  syncookies: 0 | 1;
  /** net.ipv4.tcp_abort_on_overflow */
  abortOnOverflow: 0 | 1;
}

/** The default first, then each knob flipped, then both. */
const KNOB_SETS: readonly Knobs[] = [
  { syncookies: 1, abortOnOverflow: 0 },
  { syncookies: 0, abortOnOverflow: 0 },
  { syncookies: 1, abortOnOverflow: 1 },
  { syncookies: 0, abortOnOverflow: 1 },
];

export type NetnsRow = StressRow & { knobs: string };

function describeKnobs(k: Knobs): string {
  return `syncookies=${k.syncookies} abort_on_overflow=${k.abortOnOverflow}`;
}

async function createNamespace(name: string, knobs: Knobs): Promise<void> {
  try {
    await exec('ip', ['netns', 'add', name]);
  } catch (err) {
    throw new UsageError(
      `--netns needs root and iproute2 (ip netns add failed: ${(err as Error).message.split('\n')[0]})`,
    );
  }
  await exec('ip', ['netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up']);
  await exec('ip', [
    'netns',
    'exec',
    name,
    'sysctl',
    '-q',
    '-w',
    `net.ipv4.tcp_syncookies=${knobs.syncookies}`,
    `net.ipv4.tcp_abort_on_overflow=${knobs.abortOnOverflow}`,
  ]);
}

/**
 * Runs `ackship stress ARGS --json` inside a fresh namespace per knob set and returns every row
 * with its knobs. `bin` is this CLI's entry point.
 */
export async function runInNamespaces(bin: string, args: string[], signal: AbortSignal): Promise<NetnsRow[]> {
  const rows: NetnsRow[] = [];
  for (const [i, knobs] of KNOB_SETS.entries()) {
    if (signal.aborted) throw signal.reason;
    const name = `ackship-stress-${process.pid}-${i}`;
    try {
      await createNamespace(name, knobs);
      const child = spawn('ip', ['netns', 'exec', name, process.execPath, bin, 'stress', ...args, '--json'], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const stop = () => child.kill('SIGTERM');
      signal.addEventListener('abort', stop, { once: true });
      let stdout = '';
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk;
      });
      await once(child, 'close');
      signal.removeEventListener('abort', stop);
      for (const line of stdout.split('\n')) {
        if (line.trim() === '') continue;
        const record = JSON.parse(line) as StressRow & { event?: string };
        if (record.event === 'stress') rows.push({ ...record, knobs: describeKnobs(knobs) });
      }
    } finally {
      await exec('ip', ['netns', 'del', name]).catch(() => {});
    }
  }
  return rows;
}
