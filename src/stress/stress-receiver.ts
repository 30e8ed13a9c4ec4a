// The receiving program of `ackship stress`, run as its own process so that its trouble is real:
// a front listener that misbehaves as the scenario says, in front of either a plain TCP sink
// (for the naive modes) or an ackship receiver on a real directory (for the ackship modes).
// It prints "port N" once it listens; the plain sink prints "got ID" for every message it read
// and verified.
//
//   stress-receiver.js '{"backend":"plain"|"ackship","trouble":"...","port":0,"dir":"..."}'
import { type AddressInfo, connect, createServer, type Server } from 'node:net';
import { DEFAULTS } from '../defaults.js';
import { loadHasher } from '../hash.js';
import { Receiver } from '../recv/receiver.js';
import { DirectoryPlacement } from '../store/placement.js';
import { ReceiveStore } from '../store/receive-store.js';
import { StressSink } from './sink.js';

export type Trouble = 'backlog' | 'restart' | 'crash' | 'unread' | 'none';

export interface StressReceiverConfig {
  backend: 'plain' | 'ackship';
  trouble: Trouble;
  /** 0 the first time; the same port again after a crash. */
  port: number;
  /** The ackship receiver's directory (kept across a crash). */
  dir: string;
}

/** backlog and crash: how long each accept takes, blocking the whole program as a busy one would. */
const SLOW_ACCEPT_MS = 5;
/** unread: what the program reads before it closes a connection. */
const READ_BUFFER = 16 * 1024;
/** restart: connections accepted before the listener goes away, and for how long. */
const RESTART_AFTER = 10;
const RESTART_PAUSE_MS = 300;

function report(line: string): void {
  process.stdout.write(`${line}\n`);
}

function blockFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // A program busy with something else: the kernel keeps queueing connections meanwhile.
  }
}

async function listen(server: Server, port: number, backlog: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host: '127.0.0.1', backlog }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

/** The plain sink of the naive modes, reporting each verified message as it arrives. */
async function plainBackend(): Promise<number> {
  const sink = new StressSink(({ id }) => report(`got ${id}`));
  const { port } = await sink.listen({ host: '127.0.0.1', port: 0 });
  return port;
}

/**
 * An ackship receiver. What it stored is counted from its directory at the end (see
 * run-stress.ts), so a report lost to a SIGKILL right after a confirmation does not hide a
 * message it holds.
 */
async function ackshipBackend(dir: string): Promise<{ port: number; receiver: Receiver }> {
  const store = await ReceiveStore.open(
    dir,
    new DirectoryPlacement(dir, false),
    DEFAULTS.dedupWindowSeconds * 1000,
  );
  const receiver = new Receiver(
    {
      listen: { host: '127.0.0.1', port: 0 },
      store,
      limits: { maxSize: 1 << 30, maxNameLength: 4096, maxItemsPerConnection: 1_000_000 },
      timeouts: { idleMs: 60_000, headerMs: 10_000 },
      maxConnections: 1024,
      graceMs: 1000,
    },
    {
      sessionStarted: () => {},
      confirmed: () => {},
      rejected: () => {},
      sessionEnded: () => {},
    },
  );
  const { port } = await receiver.listen();
  return { port, receiver };
}

/** How long the front waits, at the end, for connections still queued or in progress. */
const DRAIN_QUIET_MS = 200;

/** The misbehaving front: everything the senders reach goes through its trouble. */
async function front(config: StressReceiverConfig, backendPort: number): Promise<() => Promise<void>> {
  let accepted = 0;
  let restarting = false;
  let open = 0;
  let lastActivity = performance.now();
  const server: Server = createServer({ allowHalfOpen: true }, (client) => {
    accepted++;
    open++;
    lastActivity = performance.now();
    client.on('close', () => {
      open--;
      lastActivity = performance.now();
    });
    // A busy program: connections wait in the kernel's queue, where a crash loses them.
    if (config.trouble === 'backlog' || config.trouble === 'crash') blockFor(SLOW_ACCEPT_MS);
    const upstream = connect({ host: '127.0.0.1', port: backendPort });
    for (const s of [client, upstream]) {
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    // unread: every other connection is closed after one read of a program's buffer, whatever
    // else it holds.
    const dropAfterFirstRead = config.trouble === 'unread' && accepted % 2 === 0;
    client.on('data', (chunk: Buffer) => {
      if (!dropAfterFirstRead) {
        upstream.write(chunk);
        return;
      }
      upstream.end(chunk.subarray(0, READ_BUFFER));
      client.resetAndDestroy();
    });
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    if (config.trouble === 'restart' && accepted === RESTART_AFTER && !restarting) {
      restarting = true;
      // A deploy: busy for a moment (connections queue up), then the listener goes away with
      // the queue, and comes back.
      setImmediate(() => {
        blockFor(200);
        server.close();
        setTimeout(() => void listen(server, config.port, 511), RESTART_PAUSE_MS);
      });
    }
  });
  config.port = await listen(server, config.port, config.trouble === 'backlog' ? 2 : 511);
  report(`port ${config.port}`);
  // A graceful stop, unlike the troubles: take what the kernel still queues, finish what is open.
  return async () => {
    while (open > 0 || performance.now() - lastActivity < DRAIN_QUIET_MS) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    server.close();
  };
}

const config = JSON.parse(process.argv[2] ?? '{}') as StressReceiverConfig;
await loadHasher();
const backend =
  config.backend === 'ackship' ? await ackshipBackend(config.dir) : { port: await plainBackend() };
const drain = await front(config, backend.port);
process.on('SIGTERM', () => {
  void drain()
    .then(() => ('receiver' in backend ? backend.receiver.close() : undefined))
    .finally(() => process.exit(0));
});
