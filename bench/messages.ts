// The message rows of `npm run bench` (issue 12): one client, 64+ messages in flight, against a
// raw Node socket that acks each message with one byte, pipelined as deep; the same with durable
// dedup against raw with one fdatasync per batch; 4 MiB chunks from Buffers. Also the TCP
// connections each receiver accepted during the run.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from '../src/index.js';

const PEER = fileURLToPath(new URL('message-peer.js', import.meta.url));
const DEPTH = 64;

interface Peer {
  child: ChildProcess;
  port: number;
  /** Stops it; resolves with the connections it accepted. */
  stop(): Promise<number>;
}

async function startPeer(args: string[]): Promise<Peer> {
  const child = spawn(process.execPath, [PEER, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
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
      return Number(/connections (\d+)/.exec(out)?.[1]);
    },
  };
}

/** Messages a second through ackship's client, DEPTH (or more) in flight. */
async function ackshipRate(port: number, count: number, size: number): Promise<number> {
  const client = await connect(`127.0.0.1:${port}`, { maxInFlight: 256 });
  const data = Buffer.alloc(size, 7);
  const began = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 256 }, async () => {
      while (next < count) await client.send({ id: `m${next++}`, data });
    }),
  );
  const seconds = (performance.now() - began) / 1000;
  await client.close();
  return count / seconds;
}

/** Messages a second over one raw socket: u32 length + payload, 1-byte ack each, DEPTH in flight. */
async function rawRate(port: number, count: number, size: number): Promise<number> {
  const socket = tcpConnect({ host: '127.0.0.1', port });
  await once(socket, 'connect');
  socket.setNoDelay(true);
  const frame = Buffer.alloc(4 + size, 7);
  frame.writeUInt32BE(size, 0);
  const began = performance.now();
  let sent = 0;
  let acked = 0;
  await new Promise<void>((resolve) => {
    const fill = () => {
      while (sent < count && sent - acked < DEPTH) {
        socket.write(frame);
        sent++;
      }
    };
    socket.on('data', (acks: Buffer) => {
      acked += acks.length;
      if (acked >= count) resolve();
      else fill();
    });
    fill();
  });
  const seconds = (performance.now() - began) / 1000;
  socket.destroy();
  return count / seconds;
}

export interface MessageRow {
  measure: string;
  ackship: number;
  raw: number;
  ratio: number;
  goal: string;
  connections: { ackship: number; raw: number };
}

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
  const ackship = perSecond(await ackshipRate(peer.port, count, size));
  const ackshipConnections = await peer.stop();
  const raw = await startPeer(rawArgs);
  const baseline = perSecond(await rawRate(raw.port, count, size));
  const rawConnections = await raw.stop();
  return {
    measure,
    ackship,
    raw: baseline,
    ratio: ackship / baseline,
    goal,
    connections: { ackship: ackshipConnections, raw: rawConnections },
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
      `${r.measure}: ackship ${r.ackship.toFixed(0)}, raw ${r.raw.toFixed(0)}, ratio ${r.ratio.toFixed(2)} (goal ${r.goal}); connections ${r.connections.ackship} / ${r.connections.raw}`,
    );
}
