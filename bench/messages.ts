// The message rows of `npm run bench` (issue 12): one client, 64+ messages in flight, against a
// raw Node socket that acks each message with one byte, pipelined as deep; the same with durable
// dedup against raw with one fdatasync per batch; 4 MiB chunks from Buffers. Also the TCP
// connections each receiver accepted during the run, and the peak RSS of every end: each end is
// a child process of its own.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const RECEIVER = fileURLToPath(new URL('message-peer.js', import.meta.url));
const SENDER = fileURLToPath(new URL('message-sender.js', import.meta.url));

/** What a receiving end says when it stops. */
interface PeerReport {
  connections: number;
  rssKiB: number;
}

interface Peer {
  child: ChildProcess;
  port: number;
  stop(): Promise<PeerReport>;
}

async function startPeer(args: string[]): Promise<Peer> {
  const child = spawn(process.execPath, [RECEIVER, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    out += chunk;
  });
  while (!/^\d+\n/.test(out)) await once(child.stdout as NodeJS.EventEmitter, 'data');
  const port = Number(out.split('\n')[0]);
  return {
    child,
    port,
    async stop() {
      child.kill('SIGTERM');
      await once(child, 'close');
      const [, connections, rssKiB] = /connections (\d+) rss (\d+)/.exec(out) ?? [];
      return { connections: Number(connections), rssKiB: Number(rssKiB) };
    },
  };
}

/** Runs one sending end to the end; its rate and its peak RSS. */
async function runSender(
  mode: 'ackship' | 'raw',
  port: number,
  count: number,
  size: number,
): Promise<{ perSecond: number; rssKiB: number }> {
  const child = spawn(process.execPath, [SENDER, mode, String(port), String(count), String(size)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    out += chunk;
  });
  const [code] = (await once(child, 'close')) as [number | null];
  if (code !== 0) throw new Error(`the ${mode} message sender exited with ${code}`);
  return JSON.parse(out);
}

export interface MessageRow {
  measure: string;
  ackship: number;
  raw: number;
  ratio: number;
  goal: string;
  connections: { ackship: number; raw: number };
  /** Peak RSS of each end, in MiB. */
  rssMiB: { ackship: { sender: number; receiver: number }; raw: { sender: number; receiver: number } };
}

const mib = (kib: number) => Math.round(kib / 1024);

async function row(
  measure: string,
  goal: string,
  count: number,
  size: number,
  ackshipArgs: string[],
  rawArgs: string[],
  perSecond: (n: number) => number = (n) => n,
): Promise<MessageRow> {
  const peer = await startPeer(ackshipArgs);
  const ours = await runSender('ackship', peer.port, count, size);
  const ourReceiver = await peer.stop();
  const raw = await startPeer(rawArgs);
  const theirs = await runSender('raw', raw.port, count, size);
  const rawReceiver = await raw.stop();
  return {
    measure,
    ackship: perSecond(ours.perSecond),
    raw: perSecond(theirs.perSecond),
    ratio: ours.perSecond / theirs.perSecond,
    goal,
    connections: { ackship: ourReceiver.connections, raw: rawReceiver.connections },
    rssMiB: {
      ackship: { sender: mib(ours.rssKiB), receiver: mib(ourReceiver.rssKiB) },
      raw: { sender: mib(theirs.rssKiB), receiver: mib(rawReceiver.rssKiB) },
    },
  };
}

export async function messageRows(count: number): Promise<MessageRow[]> {
  const state = await mkdtemp(join(tmpdir(), 'ackship-bench-dedup-'));
  try {
    return [
      await row(
        `${count} × 1 KiB messages, in-memory handler (msg/s)`,
        '>= 0.5',
        count,
        1024,
        ['handler'],
        ['raw'],
      ),
      await row(
        `${count} × 1 KiB messages, durable dedup (msg/s)`,
        '>= 0.5 (raw: fdatasync per batch)',
        count,
        1024,
        ['handler', state],
        ['raw', 'fsync'],
      ),
      await row(
        '4 MiB chunks from Buffers (MiB/s)',
        '>= 0.8',
        200,
        4 << 20,
        ['handler'],
        ['raw'],
        (n) => n * 4,
      ),
    ];
  } finally {
    await rm(state, { recursive: true, force: true });
  }
}

// Run alone: `node dist/bench/messages.js [COUNT]`.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const r of await messageRows(Number(process.argv[2] ?? 20000)))
    console.log(
      `${r.measure}: ackship ${r.ackship.toFixed(0)}, raw ${r.raw.toFixed(0)}, ratio ${r.ratio.toFixed(2)} (goal ${r.goal}); connections ${r.connections.ackship} / ${r.connections.raw}; peak RSS MiB sender/receiver ${r.rssMiB.ackship.sender}/${r.rssMiB.ackship.receiver}, raw ${r.rssMiB.raw.sender}/${r.rssMiB.raw.receiver}`,
    );
}
