// `npm run bench`: ackship against raw TCP baselines and against the tools users would pick
// instead (an rsync daemon, socat, tar | socat | tar), measured in the same run on loopback.
// Prints a table with the exact command of every contender and writes bench/results.json.
// Kept out of the test suite: timing is not asserted.
//
//   BENCH_QUICK=1                  small sizes, for a check that it all runs (under a minute)
//   BENCH_BIG_MIB (default 1024)   size of the large file
//   BENCH_ITEMS   (default 20000)  1 KiB files sent as one flat directory
//   BENCH_TREE    (default 5000)   1 KiB files in a tree of 50 directories
//   BENCH_LONG    (default 2000)   1 KiB files through the delay proxy
//   BENCH_RUNS    (default 3)      runs of each contender, in rotated order; medians reported
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { messageRows } from './messages.js';
import { ensureTools, freePort, startRsyncDaemon } from './peers.js';

const QUICK = process.env.BENCH_QUICK === '1';
const setting = (name: string, full: number, quick: number) =>
  Number(process.env[name] ?? (QUICK ? quick : full));
const BIG_MIB = setting('BENCH_BIG_MIB', 1024, 64);
const ITEMS = setting('BENCH_ITEMS', 20000, 1000);
const TREE = setting('BENCH_TREE', 5000, 500);
const LONG = setting('BENCH_LONG', 2000, 100);
const RUNS = setting('BENCH_RUNS', 3, 3);
const MESSAGES = setting('BENCH_MESSAGES', 20000, 2000);
/** Each way, through the delay proxy. */
const DELAY_MS = 25;
/** The bound stated for either side's peak RSS, whatever the file size. */
const RSS_BOUND_MIB = 100;

const root = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(root, 'bin', 'run.cjs');
const BASELINE = fileURLToPath(new URL('baseline.js', import.meta.url));
const USAGE = fileURLToPath(new URL('usage.js', import.meta.url));
/** The node flags of bin/run.cjs's first line (`#!/usr/bin/env -S node FLAGS`): ackship runs as a shell runs it. */
const NODE_FLAGS = /^#!\S+ -S node(.*)$/m.exec(readFileSync(BIN, 'utf8'))?.[1]?.trim().split(/\s+/) ?? [];

/**
 * The pool size bin/run.cjs sets, given from outside: under bench/usage.js, an ES module, node's
 * loader starts the pool at its default 4 threads before run.cjs could size it (11 threads in
 * /proc/self/task against 23).
 */
const ACKSHIP_ENV = { UV_THREADPOOL_SIZE: '16' };

/** Node's arguments for `ackship ARGS`; with `usageFile`, what it cost is written there at exit. */
function ackship(args: string[], usageFile?: string): string[] {
  return [...NODE_FLAGS, ...(usageFile ? [USAGE, usageFile] : []), BIN, ...args];
}
const DELAY_PROXY = fileURLToPath(new URL('delay-proxy.js', import.meta.url));

interface Child {
  child: ChildProcess;
  exited: Promise<number | null>;
}

/** A child process: `node ARGS...`, or with `shell` a `sh -c` command line. */
function start(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; stdin?: number; stdout?: 'pipe' | 'ignore'; shell?: boolean } = {},
): Child {
  const [command, argv] = options.shell ? ['sh', ['-c', args.join(' ')]] : [process.execPath, args];
  const child = spawn(command, argv, {
    stdio: [options.stdin ?? 'ignore', options.stdout ?? 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
  });
  if (options.stdout !== 'ignore' && options.stdout !== undefined) child.stdout?.resume();
  return { child, exited: once(child, 'close').then(([code]) => code as number | null) };
}

async function waitForLine(
  child: ChildProcess,
  stream: 'stdout' | 'stderr',
  pattern: RegExp,
): Promise<string> {
  let text = '';
  for await (const chunk of child[stream] as NodeJS.ReadableStream) {
    text += chunk;
    const match = text.match(pattern);
    if (match) return match[1] as string;
  }
  throw new Error(`no ${pattern} from child`);
}

/** Wall seconds of a child run to its end; throws on a non-zero exit. */
async function timed(args: string[], options: Parameters<typeof start>[1] = {}): Promise<number> {
  const began = performance.now();
  const { exited, child } = start(args, { ...options, stdout: options.stdout ?? 'ignore' });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk;
  });
  const code = await exited;
  if (code !== 0) throw new Error(`${args.join(' ')} exited ${code}: ${stderr.slice(-500)}`);
  return (performance.now() - began) / 1000;
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

/**
 * Runs every contender RUNS times, the order rotated each round so that none always follows
 * another's writeback, and flushes dirty pages before each run. Medians by contender.
 */
async function rotated(contenders: Record<string, () => Promise<number>>): Promise<Record<string, number>> {
  const names = Object.keys(contenders);
  const values: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let round = 0; round < RUNS; round++) {
    for (let i = 0; i < names.length; i++) {
      const name = names[(round + i) % names.length] as string;
      spawnSync('sync');
      values[name]?.push(await (contenders[name] as () => Promise<number>)());
    }
  }
  return Object.fromEntries(names.map((n) => [n, median(values[n] as number[])]));
}

/**
 * The least any receiver that fsyncs each file does, from Node, on this machine: no network, no
 * protocol, one process. ackship against it is how much of a small file's cost is ackship's own.
 */
const DURABLE_FLOOR =
  'read, write a new part, fsync (64 at a time, 16 threads), link under its name, unlink the part; one process, no network (bench/baseline.ts)';

/**
 * Seconds the durable floor takes to copy `source` into a fresh output directory, with as many
 * fsyncs at once as ackship's receiver (bin/run.cjs sizes its thread pool at 16).
 */
async function durableFloor(work: string, source: string): Promise<number> {
  return timed([BASELINE, 'durable-floor', source, outputDir(work)], { env: { UV_THREADPOOL_SIZE: '16' } });
}

let outputs = 0;
/**
 * A fresh output directory. Outputs are removed only at the end: deleting 20,000 files makes
 * ext4 skip their inodes for a minute, which would slow down whichever run comes next.
 */
function outputDir(work: string): string {
  return join(work, 'out', String(outputs++));
}

async function randomFile(path: string, bytes: number): Promise<void> {
  const out = createWriteStream(path);
  const block = Buffer.alloc(4 * 1024 * 1024);
  for (let left = bytes; left > 0; left -= block.length) {
    for (let i = 0; i < block.length; i += 4) block.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, i);
    if (!out.write(block.subarray(0, Math.min(left, block.length)))) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

/** `count` files of 1 KiB, flat or spread over `dirs` directories. */
async function smallFiles(dir: string, count: number, dirs = 1): Promise<void> {
  for (let d = 0; d < dirs; d++) await mkdir(join(dir, dirs > 1 ? `d${d}` : ''), { recursive: true });
  for (let i = 0; i < count; i += 500) {
    await Promise.all(
      Array.from({ length: Math.min(500, count - i) }, (_, j) => {
        const n = i + j;
        const sub = dirs > 1 ? `d${n % dirs}` : '';
        return writeFile(join(dir, sub, `f${n}`), Buffer.alloc(1024, n));
      }),
    );
  }
}

interface Usage {
  rssKiB: number;
  userSeconds: number;
  systemSeconds: number;
}
const readUsage = async (path: string): Promise<Usage> => JSON.parse(await readFile(path, 'utf8'));
const cpuOf = (u: Usage) => u.userSeconds + u.systemSeconds;

/** `ackship recv` on port 0 into `out`; with `usageFile`, what it cost is written there at exit. */
async function startReceiver(
  out: string,
  usageFile?: string,
): Promise<{ port: number; stop: () => Promise<void> }> {
  const args = ['recv', '--listen', '127.0.0.1:0', '--out', out, '--quiet'];
  const receiver = start(ackship(args, usageFile), { env: ACKSHIP_ENV });
  const port = Number(await waitForLine(receiver.child, 'stderr', /listening on 127\.0\.0\.1:(\d+)/));
  receiver.child.stderr?.resume();
  return {
    port,
    stop: async () => {
      receiver.child.kill('SIGTERM');
      await receiver.exited;
    },
  };
}

function ackshipSend(work: string, port: number, args: string[], usageFile?: string): Promise<number> {
  const sendArgs = ['send', `127.0.0.1:${port}`, ...args, '--quiet'];
  return timed(ackship(sendArgs, usageFile), {
    env: { ...ACKSHIP_ENV, ACKSHIP_STATE_DIR: join(work, 'state') },
  });
}

/** A delay proxy in front of `port`; its own port. */
async function startDelayProxy(port: number): Promise<{ port: number; stop: () => void }> {
  const proxy = start([DELAY_PROXY, String(port), String(DELAY_MS)]);
  const own = Number(await waitForLine(proxy.child, 'stdout', /(\d+)/));
  return { port: own, stop: () => proxy.child.kill('SIGTERM') };
}

/** One line of the table: the medians of each contender, and ackship's ratio against some of them. */
interface Row {
  measure: string;
  unit: string;
  /** ackship and each contender: the median, or undefined when the tool was missing. */
  values: Record<string, number | undefined>;
  /** Ratios oriented so that above 1 ackship does better. */
  goals: Array<{ against: string; goal: number; ratio?: number; met?: boolean }>;
  /** The exact command each contender ran (ports and paths of this run). */
  commands: Record<string, string>;
  note?: string;
}

function row(
  measure: string,
  unit: 'items/s' | 's' | 'MiB' | 'CPU s/GiB' | 'msg/s' | 'MiB/s',
  values: Row['values'],
  goals: Array<{ against: string; goal: number }>,
  commands: Row['commands'],
  note?: string,
): Row {
  const lowerIsBetter = unit === 's' || unit === 'MiB' || unit === 'CPU s/GiB';
  const ours = values.ackship;
  return {
    measure,
    unit,
    values,
    goals: goals.map(({ against, goal }) => {
      const theirs = values[against];
      if (ours === undefined || theirs === undefined) return { against, goal };
      const ratio = lowerIsBetter ? theirs / ours : ours / theirs;
      return { against, goal, ratio, met: ratio >= goal };
    }),
    commands,
    ...(note !== undefined && { note }),
  };
}

const work = await mkdtemp(join(tmpdir(), 'ackship-bench-'));
const tools = ensureTools();
const rows: Row[] = [];
try {
  const big = join(work, 'big.bin');
  const small = join(work, 'small.bin');
  await randomFile(big, BIG_MIB * 1024 * 1024);
  await randomFile(small, 10 * 1024 * 1024);
  const items = join(work, 'items');
  await smallFiles(items, ITEMS);
  const tree = join(work, 'tree');
  await smallFiles(tree, TREE, 50);
  const long = join(work, 'long');
  await smallFiles(long, LONG);
  const longCopies = Array.from({ length: RUNS }, (_, k) => join(work, `long-${k}`));
  for (const copy of longCopies) await smallFiles(copy, LONG);
  const rsyncRoot = join(work, 'rsync');
  const rsync = tools.rsync ? await startRsyncDaemon(work, rsyncRoot) : undefined;
  let rsyncOutputs = 0;
  const rsyncRun = (source: string, flags: string[], port?: number) =>
    timed(['rsync', '-a', ...flags, source, rsync?.url(String(rsyncOutputs++), port) ?? ''], { shell: true });
  const rsyncCommand = (source: string, flags: string[]) =>
    ['rsync', '-a', ...flags, source, 'rsync://127.0.0.1:PORT/bench/N/'].join(' ');

  // --- Small files, durable and confirmed, against rsync --fsync and the unconfirmed naive baseline.
  {
    // The bound on RSS holds for any file size: 1 KiB files too, many of them.
    const manyRss = { sender: 0, receiver: 0 };
    const [sendUsage, recvUsage] = [join(work, 'many-send.json'), join(work, 'many-recv.json')];
    const contenders: Record<string, () => Promise<number>> = {
      ackship: async () => {
        const receiver = await startReceiver(outputDir(work), recvUsage);
        const seconds = await ackshipSend(work, receiver.port, [`${items}/`, '-r'], sendUsage);
        await receiver.stop();
        const [s, r] = [await readUsage(sendUsage), await readUsage(recvUsage)];
        manyRss.sender = Math.max(manyRss.sender, s.rssKiB / 1024);
        manyRss.receiver = Math.max(manyRss.receiver, r.rssKiB / 1024);
        return ITEMS / seconds;
      },
      naive: async () => {
        const out = outputDir(work);
        await mkdir(out, { recursive: true });
        const receiver = start([BASELINE, 'naive-recv', out, String(ITEMS)]);
        const port = await waitForLine(receiver.child, 'stdout', /(\d+)/);
        const seconds = await timed([BASELINE, 'naive-send', port, items]);
        await receiver.exited;
        return ITEMS / seconds;
      },
      ...(rsync && { 'rsync --fsync': async () => ITEMS / (await rsyncRun(`${items}/`, ['--fsync'])) }),
      'durable floor': async () => ITEMS / (await durableFloor(work, items)),
    };
    rows.push(
      row(
        `${ITEMS} × 1 KiB files, flat directory`,
        'items/s',
        await rotated(contenders),
        [
          { against: 'rsync --fsync', goal: 1.5 },
          { against: 'naive', goal: 1.0 },
        ],
        {
          ackship: `ackship send 127.0.0.1:PORT ${items}/ -r  →  ackship recv --out OUT`,
          naive:
            'connect, write, close per file, 64 at a time; no fsync, nothing confirmed (bench/baseline.ts)',
          'rsync --fsync': rsyncCommand(`${items}/`, ['--fsync']),
          'durable floor': DURABLE_FLOOR,
        },
      ),
    );
    for (const side of ['sender', 'receiver'] as const) {
      rows.push(
        row(
          `  peak RSS of the ${side}, ${ITEMS} × 1 KiB files`,
          'MiB',
          { ackship: manyRss[side], bound: RSS_BOUND_MIB },
          [{ against: 'bound', goal: 1 }],
          { ackship: 'process.resourceUsage().maxRSS (bench/usage.ts), the most of its runs' },
        ),
      );
    }
  }

  // --- A tree of small files: durable ackship against rsync without --fsync (the moonshot).
  {
    const contenders: Record<string, () => Promise<number>> = {
      ackship: async () => {
        const receiver = await startReceiver(outputDir(work));
        const seconds = await ackshipSend(work, receiver.port, [`${tree}/`, '-r']);
        await receiver.stop();
        return seconds;
      },
      ...(rsync && { rsync: () => rsyncRun(`${tree}/`, []) }),
      'durable floor': () => durableFloor(work, tree),
      ...(tools.socat && {
        'tar | socat | tar': async () => {
          const out = outputDir(work);
          await mkdir(out, { recursive: true });
          const port = await freePort();
          const receiver = start(
            [`socat -u TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr - | tar x -C ${out}`],
            { shell: true },
          );
          await waitForPort(port);
          const seconds = await timed([`tar c -C ${tree} . | socat -u - TCP:127.0.0.1:${port}`], {
            shell: true,
          });
          await receiver.exited;
          return seconds;
        },
      }),
    };
    rows.push(
      row(
        `tree of ${TREE} × 1 KiB files in 50 directories`,
        's',
        await rotated(contenders),
        [{ against: 'rsync', goal: 1.0 }],
        {
          ackship: `ackship send 127.0.0.1:PORT ${tree}/ -r`,
          rsync: rsyncCommand(`${tree}/`, []),
          'tar | socat | tar': `tar c -C ${tree} . | socat -u - TCP:127.0.0.1:PORT  →  socat -u TCP-LISTEN:PORT - | tar x -C OUT`,
          'durable floor': DURABLE_FLOOR,
        },
        'rsync and tar do not fsync here; ackship does, every file and directory, before it confirms',
      ),
    );
  }

  // --- One large file, durable: time, and CPU of each side against the raw pipe's.
  const cpu = {
    ackship: { sender: [] as number[], receiver: [] as number[] },
    raw: { sender: [] as number[], receiver: [] as number[] },
  };
  const rss = { sender: 0, receiver: 0 };
  {
    const [sendUsage, recvUsage] = [join(work, 'big-send.json'), join(work, 'big-recv.json')];
    const contenders: Record<string, () => Promise<number>> = {
      ackship: async () => {
        const receiver = await startReceiver(outputDir(work), recvUsage);
        const seconds = await ackshipSend(work, receiver.port, [big], sendUsage);
        await receiver.stop();
        const [s, r] = [await readUsage(sendUsage), await readUsage(recvUsage)];
        cpu.ackship.sender.push(cpuOf(s));
        cpu.ackship.receiver.push(cpuOf(r));
        rss.sender = Math.max(rss.sender, s.rssKiB / 1024);
        rss.receiver = Math.max(rss.receiver, r.rssKiB / 1024);
        return seconds;
      },
      'raw pipe + fsync': async () => {
        const out = outputDir(work);
        await mkdir(out, { recursive: true });
        const receiver = start([USAGE, recvUsage, BASELINE, 'pipe-recv', join(out, 'big.bin')]);
        const port = await waitForLine(receiver.child, 'stdout', /(\d+)/);
        const seconds = await timed([USAGE, sendUsage, BASELINE, 'pipe-send', port, big]);
        await receiver.exited;
        cpu.raw.sender.push(cpuOf(await readUsage(sendUsage)));
        cpu.raw.receiver.push(cpuOf(await readUsage(recvUsage)));
        return seconds;
      },
      ...(rsync && { 'rsync --fsync': () => rsyncRun(big, ['--fsync']) }),
      ...(tools.socat && {
        socat: async () => {
          const out = outputDir(work);
          await mkdir(out, { recursive: true });
          const port = await freePort();
          const receiver = start(
            [`socat -u TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr OPEN:${join(out, 'big.bin')},creat,trunc`],
            { shell: true },
          );
          await waitForPort(port);
          const seconds = await timed([`socat -u OPEN:${big} TCP:127.0.0.1:${port}`], { shell: true });
          await receiver.exited;
          return seconds;
        },
      }),
    };
    rows.push(
      row(
        `${BIG_MIB} MiB file, durable`,
        's',
        await rotated(contenders),
        [
          { against: 'rsync --fsync', goal: 1.0 },
          { against: 'raw pipe + fsync', goal: 0.9 },
        ],
        {
          ackship: `ackship send 127.0.0.1:PORT ${big}`,
          'raw pipe + fsync': 'file → one TCP connection → writeSync to a file, fsync (bench/baseline.ts)',
          'rsync --fsync': rsyncCommand(big, ['--fsync']),
          socat: `socat -u OPEN:${big} TCP:127.0.0.1:PORT  →  socat -u TCP-LISTEN:PORT OPEN:OUT,creat (no fsync)`,
        },
      ),
    );
    const perGiB = (seconds: number[]) => median(seconds) / (BIG_MIB / 1024);
    for (const side of ['sender', 'receiver'] as const) {
      rows.push(
        row(
          `  CPU of the ${side} (user + sys) per GiB`,
          'CPU s/GiB',
          { ackship: perGiB(cpu.ackship[side]), 'raw pipe + fsync': perGiB(cpu.raw[side]) },
          [{ against: 'raw pipe + fsync', goal: 1 / 1.3 }],
          { ackship: 'process.resourceUsage() at exit (bench/usage.ts)' },
        ),
      );
    }
  }

  // --- Memory: peak RSS of each side, 10 MiB against the large file.
  {
    const [sendUsage, recvUsage] = [join(work, 'small-send.json'), join(work, 'small-recv.json')];
    const receiver = await startReceiver(outputDir(work), recvUsage);
    await ackshipSend(work, receiver.port, [small], sendUsage);
    await receiver.stop();
    const [s, r] = [await readUsage(sendUsage), await readUsage(recvUsage)];
    for (const [side, smallMiB, bigMiB] of [
      ['sender', s.rssKiB / 1024, rss.sender],
      ['receiver', r.rssKiB / 1024, rss.receiver],
    ] as const) {
      rows.push(
        row(
          `peak RSS of the ${side}, ${BIG_MIB} MiB file against 10 MiB`,
          'MiB',
          { ackship: bigMiB, '10 MiB': smallMiB, bound: RSS_BOUND_MIB },
          [
            { against: '10 MiB', goal: 1 / 1.2 },
            { against: 'bound', goal: 1 },
          ],
          { ackship: 'process.resourceUsage().maxRSS (bench/usage.ts)' },
        ),
      );
    }
  }

  // --- A stream, stdin to stdout, against a raw Node pipe.
  {
    const streamOnce = async (
      receiverArgs: string[],
      portPattern: RegExp,
      senderArgs: (port: string) => string[],
    ) => {
      const receiver = start(receiverArgs, { stdout: 'ignore' });
      const port = await waitForLine(receiver.child, 'stderr', portPattern);
      receiver.child.stderr?.resume();
      const input = await open(big, 'r');
      try {
        const began = performance.now();
        const sender = start(senderArgs(port), {
          env: { ACKSHIP_STATE_DIR: join(work, 'state') },
          stdin: input.fd,
        });
        sender.child.stdout?.resume();
        sender.child.stderr?.resume();
        const codes = await Promise.all([sender.exited, receiver.exited]);
        if (codes.some((code) => code !== 0)) throw new Error(`stream run exited ${codes.join(', ')}`);
        return (performance.now() - began) / 1000;
      } finally {
        await input.close();
      }
    };
    const values = await rotated({
      ackship: () =>
        streamOnce(
          ackship(['recv', '--listen', '127.0.0.1:0', '--out', '-', '--quiet']),
          /listening on 127\.0\.0\.1:(\d+)/,
          (port) => ackship(['send', `127.0.0.1:${port}`, '-', '--quiet']),
        ),
      'raw pipe': () =>
        streamOnce([BASELINE, 'stream-recv'], /(\d+)/, (port) => [BASELINE, 'stream-send', port]),
    });
    rows.push(
      row(`${BIG_MIB} MiB stream, stdin → stdout`, 's', values, [{ against: 'raw pipe', goal: 0.9 }], {
        ackship: `ackship send 127.0.0.1:PORT - < ${big}  →  ackship recv --out - > /dev/null`,
        'raw pipe': 'stdin → one TCP connection → stdout (bench/baseline.ts)',
      }),
    );
  }

  // --- A long link: 25 ms each way through a userspace delay proxy. rsync's daemon runs for
  // the whole bench and each run writes a new directory in it; so does ackship's receiver here,
  // for the row's runs (each sends its own copy of the tree, long-K/). A receiver started for
  // each run is measured beside it: a fresh process also pays for its code's warm-up (2,000
  // files to one receiver, 3 times: the first ~1,000/s, the next ~1,350-1,440/s, here).
  {
    const service = await startReceiver(outputDir(work));
    let copy = 0;
    const throughProxy = async (port: number, source: string) => {
      const proxy = await startDelayProxy(port);
      const seconds = await ackshipSend(work, proxy.port, [source, '-r']);
      proxy.stop();
      return LONG / seconds;
    };
    const contenders: Record<string, () => Promise<number>> = {
      ackship: () => throughProxy(service.port, longCopies[copy++ % longCopies.length] as string),
      'ackship, receiver started for the run': async () => {
        const receiver = await startReceiver(outputDir(work));
        const rate = await throughProxy(receiver.port, `${long}/`);
        await receiver.stop();
        return rate;
      },
      ...(rsync && {
        'rsync --fsync': async () => {
          const proxy = await startDelayProxy(rsync.port);
          const seconds = await rsyncRun(`${long}/`, ['--fsync'], proxy.port);
          proxy.stop();
          return LONG / seconds;
        },
      }),
    };
    const { ackship, 'ackship, receiver started for the run': cold, ...others } = await rotated(contenders);
    await service.stop();
    const rsyncCommandThere = `${rsyncCommand(`${long}/`, ['--fsync'])} (through the same proxy)`;
    rows.push(
      row(
        `${LONG} × 1 KiB files, ${DELAY_MS} ms each way`,
        'items/s',
        { ackship, ...others },
        [{ against: 'rsync --fsync', goal: 1.0 }],
        {
          ackship: `ackship send 127.0.0.1:PROXY ${join(work, 'long-K')} -r (bench/delay-proxy.ts in front of one recv for the row's runs)`,
          'rsync --fsync': rsyncCommandThere,
        },
      ),
      row('  the same, a receiver started for each run', 'items/s', { ackship: cold, ...others }, [], {
        ackship: `ackship send 127.0.0.1:PROXY ${long}/ -r (bench/delay-proxy.ts in front of a recv started for the run)`,
        'rsync --fsync': rsyncCommandThere,
      }),
    );
  }

  // --- Start-up.
  {
    const values = await rotated({
      ackship: () => timed(ackship(['--version'])),
      'node -e 0': () => timed(['-e', '0']),
    });
    rows.push(
      row('start-up', 's', values, [{ against: 'node -e 0', goal: 1 / 2 }], {
        ackship: 'ackship --version',
        'node -e 0': 'node -e 0',
      }),
    );
  }

  // --- Programs to programs (issue 12): messages over one client.
  for (const m of await messageRows(MESSAGES)) {
    const durable = m.measure.includes('durable');
    rows.push(
      row(
        m.measure.replace(/ \((msg|MiB)\/s\)$/, ''),
        m.measure.includes('MiB/s') ? 'MiB/s' : 'msg/s',
        { ackship: m.ackship, raw: m.raw },
        [{ against: 'raw', goal: Number(/[\d.]+/.exec(m.goal)?.[0]) }],
        {
          ackship: `connect() with its defaults, 256 calls in flight (bench/message-sender.ts)${durable ? ', receiver with stateDir' : ''}`,
          raw: `one raw socket: u32 length + payload, a 1-byte ack each, 64 in flight${durable ? ', one fdatasync per batch of acks' : ''}`,
        },
        `TCP connections ${m.connections.ackship} vs ${m.connections.raw}; peak RSS MiB sender/receiver ${m.rssMiB.ackship.sender}/${m.rssMiB.ackship.receiver} vs ${m.rssMiB.raw.sender}/${m.rssMiB.raw.receiver}`,
      ),
    );
  }

  await rsync?.stop();
  const results = {
    date: new Date().toISOString(),
    machine: { node: process.version, cpus: cpus().length, model: cpus()[0]?.model, kernel: release() },
    settings: {
      quick: QUICK,
      runs: RUNS,
      bigMiB: BIG_MIB,
      items: ITEMS,
      tree: TREE,
      long: LONG,
      delayMs: DELAY_MS,
    },
    tools: tools.notes,
    rows,
  };
  await writeFile(join(root, 'bench', 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  print(rows);
  for (const note of tools.notes) console.log(`note: ${note}`);
  console.log(`\nmedians of ${RUNS} runs each, order rotated; written to bench/results.json`);
} finally {
  await rm(work, { recursive: true, force: true });
}

/**
 * Waits until something listens on `port` (a tool that cannot say when it is ready), by the
 * kernel's socket table: a probe connection would be the one connection `socat -u` accepts.
 */
async function waitForPort(port: number): Promise<void> {
  const local = `:${port.toString(16).toUpperCase().padStart(4, '0')} `;
  for (let i = 0; i < 250; i++) {
    const table = await readFile('/proc/net/tcp', 'utf8');
    if (table.split('\n').some((line) => line.includes(local) && / 0A /.test(line))) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`nothing listens on ${port}`);
}

function print(table: Row[]): void {
  const fmt = (n: number | undefined, unit: string) =>
    n === undefined
      ? 'skipped'
      : n.toFixed(unit === 's' ? 2 : unit === 'CPU s/GiB' || unit === 'MiB' ? 1 : 0);
  const lines: string[][] = [['measure', 'unit', 'ackship', 'others', 'ratios (goal)']];
  for (const r of table) {
    const others = Object.entries(r.values)
      .filter(([name]) => name !== 'ackship')
      .map(([name, v]) => `${name} ${fmt(v, r.unit)}`)
      .join('; ');
    const ratios = r.goals
      .map((g) =>
        g.ratio === undefined
          ? `vs ${g.against}: skipped`
          : `vs ${g.against} ${g.ratio.toFixed(2)} (>= ${g.goal.toFixed(2)}${g.met ? ', met' : ''})`,
      )
      .join('; ');
    lines.push([r.measure, r.unit, fmt(r.values.ackship, r.unit), others, ratios]);
  }
  const widths = lines[0]?.map((_, i) => Math.max(...lines.map((l) => (l[i] as string).length))) ?? [];
  for (const line of lines) console.log(line.map((cell, i) => cell.padEnd(widths[i] as number)).join('  '));
  console.log('\ncommands:');
  for (const r of table) {
    console.log(`  ${r.measure.trim()}`);
    for (const [name, command] of Object.entries(r.commands)) console.log(`    ${name}: ${command}`);
    if (r.note !== undefined) console.log(`    (${r.note})`);
  }
}
