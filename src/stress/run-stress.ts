// `ackship stress`: the same messages sent in each mode to a receiver process whose trouble is
// real, counting what the receiving program read and verified, not what a kernel acknowledged.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once, setMaxListeners } from 'node:events';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UnconfirmedError } from '../errors.js';
import { type Address, formatAddress } from '../net-address.js';
import { TRANSFER_ID_LEN } from '../protocol/constants.js';
import { Sender } from '../send/sender.js';
import type { Source } from '../send/sources.js';
import { checkMessage, makeMessage } from './messages.js';
import { type PlainMode, sendPlain } from './plain-clients.js';
import type { StressReceiverConfig, Trouble } from './stress-receiver.js';

export const MODES = ['naive', 'halfclose', 'ackship', 'ackship-mux'] as const;
export type Mode = (typeof MODES)[number];

export const SCENARIOS = ['backlog', 'restart', 'crash', 'unread'] as const;
export type Scenario = (typeof SCENARIOS)[number];

interface Workload {
  count: number;
  size: number;
  concurrency: number;
}

/** Each scenario's default workload: sized so that the trouble bites here in seconds. */
const DEFAULT_WORKLOADS: Readonly<Record<Scenario, Workload>> = {
  backlog: { count: 400, size: 100, concurrency: 100 },
  restart: { count: 100, size: 100, concurrency: 100 },
  crash: { count: 300, size: 1024, concurrency: 10 },
  unread: { count: 200, size: 64 * 1024, concurrency: 20 },
};

/** crash: when the receiver is killed, and how long it stays down. */
const CRASH_AFTER_MS = 300;
const CRASH_DOWN_MS = 200;

export interface StressOptions {
  scenarios: Scenario[];
  modes: Mode[];
  /** Overrides of every scenario's workload. */
  workload: Partial<Workload>;
  /** Upper bound on each scenario-and-mode run; what is unfinished then counts as errors. */
  seconds: number;
  signal: AbortSignal;
  /** Told when a run starts, for progress on a terminal. */
  progress?(scenario: Scenario | 'target', mode: Mode): void;
  /**
   * The receiving program's script: dist/src/stress/stress-receiver.js in the package. Passed
   * in, because the bundled CLI's modules do not sit beside it.
   */
  receiverScript: string;
}

export interface StressRow {
  /** The scenario, or "target" for a run against a remote receiver. */
  scenario: Scenario | 'target';
  mode: Mode;
  sent: number;
  /** Messages whose sender saw no error (naive), a clean close (halfclose), or a confirmation. */
  believed: number;
  /** Messages the receiving program read and verified, each counted once. */
  received: number;
  /** Believed delivered, never received. */
  lostSilently: number;
  /** Messages not believed delivered: the sender saw an error, or gave up, or ran out of time. */
  errors: number;
  retries: number;
  connections: number;
  /** Messages the receiving program got more than once. */
  duplicates: number;
  seconds: number;
}

/** The receiving program, restartable on the same port and directory. */
class ReceiverProcess {
  readonly #script: string;
  readonly #config: StressReceiverConfig;
  readonly #got = new Map<number, number>();
  #child: ChildProcess | undefined;

  constructor(script: string, config: StressReceiverConfig) {
    this.#script = script;
    this.#config = config;
  }

  get port(): number {
    return this.#config.port;
  }

  /** Ids received, with how many times each. */
  get got(): ReadonlyMap<number, number> {
    return this.#got;
  }

  async start(): Promise<void> {
    const child = spawn(process.execPath, [this.#script, JSON.stringify(this.#config)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.#child = child;
    let buffered = '';
    const listening = new Promise<void>((resolve, reject) => {
      child.once('exit', (code) =>
        reject(new Error(`the stress receiver exited (${code}) before it listened`)),
      );
      child.stdout?.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        const lines = buffered.split('\n');
        buffered = lines.pop() ?? '';
        for (const line of lines) {
          const [word, value] = line.split(' ');
          if (word === 'port') {
            this.#config.port = Number(value);
            resolve();
          } else if (word === 'got') {
            this.#got.set(Number(value), (this.#got.get(Number(value)) ?? 0) + 1);
          }
        }
      });
    });
    await listening;
  }

  /** SIGKILL: what the program held in memory is gone; its directory stays. */
  async crash(): Promise<void> {
    const child = this.#child;
    if (child === undefined || child.exitCode !== null) return;
    child.kill('SIGKILL');
    await once(child, 'exit');
  }

  async stop(): Promise<void> {
    const child = this.#child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await once(child, 'exit');
  }
}

/** Ids of the intact messages an ackship receiver holds under their final names. */
async function storedMessages(dir: string): Promise<ReadonlyMap<number, number>> {
  const got = new Map<number, number>();
  for (const name of await readdir(dir)) {
    if (!name.startsWith('m')) continue;
    const message = checkMessage(await readFile(join(dir, name)));
    if (message !== undefined && name === `m${message.id}`) got.set(message.id, 1);
  }
  return got;
}

/** Runs `work` for each index with at most `concurrency` at once, stopping early on abort. */
async function pool(
  count: number,
  concurrency: number,
  signal: AbortSignal,
  work: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count && !signal.aborted) await work(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

interface SendTally {
  believed: Set<number>;
  retries: number;
  connections: number;
}

async function sendPlainMessages(
  mode: PlainMode,
  address: () => Address,
  messages: Buffer[],
  w: Workload,
  signal: AbortSignal,
) {
  const tally: SendTally = { believed: new Set(), retries: 0, connections: 0 };
  await pool(messages.length, w.concurrency, signal, async (i) => {
    tally.connections++;
    const { host, port } = address();
    if (await sendPlain(mode, host, port, messages[i] as Buffer, 5000)) tally.believed.add(i);
  });
  return tally;
}

async function sendAckshipMessages(
  mode: 'ackship' | 'ackship-mux',
  address: () => Address,
  sources: Source[],
  w: Workload,
  signal: AbortSignal,
) {
  const tally: SendTally = { believed: new Set(), retries: 0, connections: 0 };
  const session = randomBytes(TRANSFER_ID_LEN);
  const senderFor = () =>
    new Sender({
      address: address(),
      timeoutMs: 3000,
      // Overload is what the stress shows: a connection the receiver's kernel queued but its
      // program did not accept yet is waited for (the idle timeout), never taken for "not ackship".
      connectTimeoutMs: 60_000,
      retry: { retries: 40, baseDelayMs: 20, maxDelayMs: 500, maxTimeMs: 60_000 },
      signal,
      session,
    });
  // ackship-mux: a few long-lived connections carry every message.
  const shared = mode === 'ackship-mux' ? [senderFor(), senderFor()] : [];
  const events = { retry: () => void tally.retries++ };
  await pool(sources.length, w.concurrency, signal, async (i) => {
    const sender = shared[i % 2] ?? senderFor();
    try {
      await sender.deliver(sources[i] as Source, randomBytes(TRANSFER_ID_LEN), events);
      tally.believed.add(i);
    } catch {
      // Not believed delivered: counted among the errors.
    } finally {
      if (shared.length === 0) {
        tally.connections += sender.connectionsOpened;
        sender.close();
      }
    }
  });
  for (const sender of shared) {
    tally.connections += sender.connectionsOpened;
    sender.close();
  }
  return tally;
}

/** The messages as files, for the ackship modes' senders. */
async function messageFiles(dir: string, messages: Buffer[], prefix: string): Promise<Source[]> {
  await mkdir(dir, { recursive: true });
  return Promise.all(
    messages.map(async (message, i) => {
      const path = join(dir, `m${i}`);
      await writeFile(path, message);
      return { label: path, path, name: `${prefix}m${i}`, size: message.length };
    }),
  );
}

function isPlain(mode: Mode): mode is PlainMode {
  return mode === 'naive' || mode === 'halfclose';
}

function sendAll(
  mode: Mode,
  address: () => Address,
  messages: Buffer[],
  sources: Source[],
  w: Workload,
  signal: AbortSignal,
) {
  return isPlain(mode)
    ? sendPlainMessages(mode, address, messages, w, signal)
    : sendAckshipMessages(mode, address, sources, w, signal);
}

/** The run's signal: the user's, bounded by `seconds`. */
function bounded(options: Pick<StressOptions, 'signal' | 'seconds'>): AbortSignal {
  const signal = AbortSignal.any([options.signal, AbortSignal.timeout(options.seconds * 1000)]);
  setMaxListeners(0, signal); // every message in flight waits on it
  return signal;
}

function toRow(
  scenario: StressRow['scenario'],
  mode: Mode,
  w: Workload,
  tally: SendTally,
  got: ReadonlyMap<number, number>,
  seconds: number,
): StressRow {
  let lostSilently = 0;
  for (const id of tally.believed) if (!got.has(id)) lostSilently++;
  let duplicates = 0;
  for (const times of got.values()) if (times > 1) duplicates++;
  return {
    scenario,
    mode,
    sent: w.count,
    believed: tally.believed.size,
    received: got.size,
    lostSilently,
    errors: w.count - tally.believed.size,
    retries: tally.retries,
    connections: tally.connections,
    duplicates,
    seconds,
  };
}

async function runOne(scenario: Scenario, mode: Mode, w: Workload, options: StressOptions, work: string) {
  const messages = Array.from({ length: w.count }, (_, i) => makeMessage(0, i, w.size));
  const dir = join(work, `${scenario}-${mode}`);
  await mkdir(join(dir, 'in'), { recursive: true });
  const sources = isPlain(mode) ? [] : await messageFiles(join(dir, 'out'), messages, '');
  const backend = isPlain(mode) ? 'plain' : 'ackship';
  const trouble: Trouble = scenario;
  const receiver = new ReceiverProcess(options.receiverScript, {
    backend,
    trouble,
    port: 0,
    dir: join(dir, 'in'),
  });
  await receiver.start();
  const signal = bounded(options);
  const started = performance.now();
  const crashing =
    scenario === 'crash'
      ? (async () => {
          await new Promise((resolve) => setTimeout(resolve, CRASH_AFTER_MS));
          await receiver.crash();
          await new Promise((resolve) => setTimeout(resolve, CRASH_DOWN_MS));
          await receiver.start();
        })()
      : Promise.resolve();
  const address = () => ({ host: '127.0.0.1', port: receiver.port });
  const tally = await sendAll(mode, address, messages, sources, w, signal);
  await crashing;
  const seconds = (performance.now() - started) / 1000;
  await receiver.stop();
  const got = backend === 'ackship' ? await storedMessages(join(dir, 'in')) : receiver.got;
  return toRow(scenario, mode, w, tally, got, seconds);
}

/** Asks a remote sink which messages of `run` its program got. */
async function sinkReport(sink: Address, run: number): Promise<Map<number, number>> {
  const socket = connect({ host: sink.host, port: sink.port }, () => socket.end(`REPORT ${run}\n`));
  let text = '';
  socket.on('data', (chunk: Buffer) => {
    text += chunk;
  });
  try {
    await once(socket, 'end');
    const { ids } = JSON.parse(text) as { ids: number[] };
    return new Map(ids.map((id) => [id, 1]));
  } catch (err) {
    throw new UnconfirmedError(
      `the stress sink at ${formatAddress(sink)} gave no report: ${(err as Error).message}`,
    );
  } finally {
    socket.destroy();
  }
}

export interface TargetOptions extends Omit<StressOptions, 'scenarios' | 'receiverScript'> {
  /** A remote `ackship recv`, for the ackship modes. */
  target: Address;
  /** Its plain-TCP sink (`recv --stress-sink`), for the naive modes. */
  sink: Address;
}

/**
 * `--target`: the workload against a real receiver elsewhere, with no trouble of ours. For the
 * naive modes the sink says which messages it got; for the ackship modes the receiver's
 * confirmations are its report.
 */
export async function runTarget(options: TargetOptions): Promise<StressRow[]> {
  const work = await mkdtemp(join(tmpdir(), 'ackship-stress-'));
  const w = { count: 1000, size: 1024, concurrency: 50, ...options.workload };
  const rows: StressRow[] = [];
  try {
    for (const mode of options.modes) {
      options.progress?.('target', mode);
      const run = randomBytes(4).readUInt32BE(0);
      const messages = Array.from({ length: w.count }, (_, i) => makeMessage(run, i, w.size));
      const sources = isPlain(mode)
        ? []
        : await messageFiles(join(work, String(run)), messages, `stress-${run}/`);
      const address = () => (isPlain(mode) ? options.sink : options.target);
      const started = performance.now();
      const tally = await sendAll(mode, address, messages, sources, w, bounded(options));
      const seconds = (performance.now() - started) / 1000;
      const got = isPlain(mode)
        ? await sinkReport(options.sink, run)
        : new Map([...tally.believed].map((id) => [id, 1]));
      rows.push(toRow('target', mode, w, tally, got, seconds));
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return rows;
}

/** Runs every scenario in every mode, one after another. */
export async function runStress(options: StressOptions): Promise<StressRow[]> {
  const work = await mkdtemp(join(tmpdir(), 'ackship-stress-'));
  const rows: StressRow[] = [];
  try {
    for (const scenario of options.scenarios) {
      for (const mode of options.modes) {
        if (options.signal.aborted) throw options.signal.reason;
        options.progress?.(scenario, mode);
        const workload = { ...DEFAULT_WORKLOADS[scenario], ...options.workload };
        rows.push(await runOne(scenario, mode, workload, options, work));
      }
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return rows;
}
