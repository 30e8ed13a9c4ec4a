// `npm run bench`: ackship against raw TCP baselines, measured in the same run on loopback.
// Prints a table and writes bench/results.json. Kept out of the test suite: timing is not asserted.
//
//   BENCH_BIG_MIB (default 1024)  size of the large file
//   BENCH_ITEMS   (default 20000) number of 1 KiB items
//   BENCH_RUNS    (default 3)     repetitions of each timing; the median is reported
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { messageRows } from './messages.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(root, 'bin', 'run.js');
const BASELINE = fileURLToPath(new URL('baseline.js', import.meta.url));
const MAX_RSS = fileURLToPath(new URL('max-rss.js', import.meta.url));
const BIG_MIB = Number(process.env.BENCH_BIG_MIB ?? 1024);
const ITEMS = Number(process.env.BENCH_ITEMS ?? 20000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);

interface Child {
  child: ChildProcess;
  stdout: string;
  exited: Promise<number | null>;
}

/** `stdin`: a file descriptor to read from; `stdout: 'ignore'` sends it to /dev/null. */
function start(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  io: { stdin?: number; stdout?: 'pipe' | 'ignore' } = {},
): Child {
  const child = spawn(process.execPath, args, {
    stdio: [io.stdin ?? 'ignore', io.stdout ?? 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  const state: Child = {
    child,
    stdout: '',
    exited: once(child, 'close').then(([code]) => code as number | null),
  };
  child.stdout?.on('data', (chunk: Buffer) => {
    state.stdout += chunk;
  });
  child.stderr?.resume();
  return state;
}

async function waitForLine(
  child: ChildProcess,
  stream: 'stdout' | 'stderr',
  pattern: RegExp,
): Promise<RegExpMatchArray> {
  let text = '';
  for await (const chunk of child[stream] as NodeJS.ReadableStream) {
    text += chunk;
    const match = text.match(pattern);
    if (match) return match;
  }
  throw new Error(`no ${pattern} from child`);
}

/** Wall seconds of a child process run to its end; throws on a non-zero exit. */
async function timed(args: string[], env: NodeJS.ProcessEnv = {}): Promise<number> {
  const began = performance.now();
  const code = await start(args, env).exited;
  if (code !== 0) throw new Error(`${args.join(' ')} exited ${code}`);
  return (performance.now() - began) / 1000;
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

async function repeat(runs: number, measure: () => Promise<number>): Promise<number> {
  const values: number[] = [];
  for (let i = 0; i < runs; i++) values.push(await measure());
  return median(values);
}

/**
 * Runs two measures in turn, `runs` times each, so that neither always follows the other's mess,
 * and flushes dirty pages before each, so that no run pays for the writeback of the one before.
 */
async function alternate(
  runs: number,
  a: () => Promise<number>,
  b: () => Promise<number>,
): Promise<[number, number]> {
  const [as, bs]: [number[], number[]] = [[], []];
  const settled = (measure: () => Promise<number>) => {
    spawnSync('sync');
    return measure();
  };
  for (let i = 0; i < runs; i++) {
    if (i % 2 === 0) {
      as.push(await settled(a));
      bs.push(await settled(b));
    } else {
      bs.push(await settled(b));
      as.push(await settled(a));
    }
  }
  return [median(as), median(bs)];
}

let outputs = 0;
/** A fresh output directory. Outputs are removed only at the end: deleting 20,000 files makes
 * ext4 skip their inodes for a minute, which would slow down whichever run comes next. */
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

/** Starts `ackship recv` on port 0 into `dir`; `rssFile` records its peak RSS at exit. */
async function startReceiver(
  dir: string,
  rssFile?: string,
): Promise<{ port: number; stop: () => Promise<void> }> {
  const args = ['recv', '--listen', '127.0.0.1:0', '--out', dir, '--quiet'];
  const child = start(rssFile ? [MAX_RSS, rssFile, ...args] : [BIN, ...args]);
  const [, port] = await waitForLine(child.child, 'stderr', /listening on 127\.0\.0\.1:(\d+)/);
  return {
    port: Number(port),
    stop: async () => {
      child.child.kill('SIGTERM');
      await child.exited;
    },
  };
}

async function ackshipSend(work: string, port: number, args: string[], rssFile?: string): Promise<number> {
  const env = { ACKSHIP_STATE_DIR: join(work, 'state') };
  const sendArgs = ['send', `127.0.0.1:${port}`, ...args, '--quiet'];
  return timed(rssFile ? [MAX_RSS, rssFile, ...sendArgs] : [BIN, ...sendArgs], env);
}

async function bigFile(work: string, file: string): Promise<{ ackship: number; raw: number }> {
  const [raw, ackship] = await alternate(
    RUNS,
    async () => {
      const out = join(work, 'raw.out');
      const receiver = start([BASELINE, 'pipe-recv', out]);
      const [, port] = await waitForLine(receiver.child, 'stdout', /(\d+)/);
      const seconds = await timed([BASELINE, 'pipe-send', port as string, file]);
      await receiver.exited;
      await rm(out);
      return seconds;
    },
    async () => {
      const out = outputDir(work);
      const receiver = await startReceiver(out);
      const seconds = await ackshipSend(work, receiver.port, [file]);
      await receiver.stop();
      await rm(out, { recursive: true });
      return seconds;
    },
  );
  return { ackship, raw };
}

async function manyItems(work: string): Promise<{ ackship: number; naive: number }> {
  const items = join(work, 'items');
  await mkdir(items);
  for (let i = 0; i < ITEMS; i += 500) {
    await Promise.all(
      Array.from({ length: Math.min(500, ITEMS - i) }, (_, j) =>
        writeFile(join(items, `m${i + j}`), Buffer.alloc(1024, i + j)),
      ),
    );
  }
  const [naive, ackship] = await alternate(
    RUNS,
    async () => {
      const out = outputDir(work);
      await mkdir(out, { recursive: true });
      const receiver = start([BASELINE, 'naive-recv', out, String(ITEMS)]);
      const [, port] = await waitForLine(receiver.child, 'stdout', /(\d+)/);
      const seconds = await timed([BASELINE, 'naive-send', port as string, items]);
      await receiver.exited;
      return ITEMS / seconds;
    },
    async () => {
      const receiver = await startReceiver(outputDir(work));
      const seconds = await ackshipSend(work, receiver.port, [`${items}/`, '-r']);
      await receiver.stop();
      return ITEMS / seconds;
    },
  );
  return { ackship, naive };
}

/**
 * A 1 GiB stream, stdin to stdout: `ackship send -` into `ackship recv --out -` against a
 * raw Node TCP pipe (stdin → socket → stdout). Both write stdout to /dev/null. Also returns the
 * peak RSS of both ackship processes over the runs.
 */
async function streamPipe(
  work: string,
  file: string,
): Promise<{ ackship: number; raw: number; senderMiB: number; receiverMiB: number }> {
  const peaks = { sender: 0, receiver: 0 };
  const pipeOnce = async (
    receiverArgs: string[],
    portPattern: RegExp,
    senderArgs: (port: string) => string[],
  ): Promise<number> => {
    const receiver = start(receiverArgs, {}, { stdout: 'ignore' });
    const [, port] = await waitForLine(receiver.child, 'stderr', portPattern);
    const input = await open(file, 'r');
    try {
      const began = performance.now();
      const sender = start(
        senderArgs(port as string),
        { ACKSHIP_STATE_DIR: join(work, 'state') },
        { stdin: input.fd },
      );
      const codes = await Promise.all([sender.exited, receiver.exited]);
      if (codes.some((code) => code !== 0)) throw new Error(`stream run exited ${codes.join(', ')}`);
      return (performance.now() - began) / 1000;
    } finally {
      await input.close();
    }
  };
  const [sendRss, recvRss] = [join(work, 'stream-send.rss'), join(work, 'stream-recv.rss')];
  const [raw, ackship] = await alternate(
    RUNS,
    () => pipeOnce([BASELINE, 'stream-recv'], /(\d+)/, (port) => [BASELINE, 'stream-send', port]),
    async () => {
      const seconds = await pipeOnce(
        [MAX_RSS, recvRss, 'recv', '--listen', '127.0.0.1:0', '--out', '-', '--quiet'],
        /listening on 127\.0\.0\.1:(\d+)/,
        (port) => [MAX_RSS, sendRss, 'send', `127.0.0.1:${port}`, '-', '--quiet'],
      );
      const read = async (path: string) => Number(await readFile(path, 'utf8')) / 1024;
      peaks.sender = Math.max(peaks.sender, await read(sendRss));
      peaks.receiver = Math.max(peaks.receiver, await read(recvRss));
      return seconds;
    },
  );
  return { ackship, raw, senderMiB: peaks.sender, receiverMiB: peaks.receiver };
}

async function peakRss(work: string, file: string): Promise<{ sender: number; receiver: number }> {
  const out = outputDir(work);
  const [senderFile, receiverFile] = [join(work, 'rss-send'), join(work, 'rss-recv')];
  const receiver = await startReceiver(out, receiverFile);
  await ackshipSend(work, receiver.port, [file], senderFile);
  await receiver.stop();
  await rm(out, { recursive: true });
  const read = async (path: string) => Number(await readFile(path, 'utf8')) / 1024;
  return { sender: await read(senderFile), receiver: await read(receiverFile) };
}

async function startup(): Promise<{ ackship: number; node: number }> {
  const runs = Math.max(RUNS, 5);
  return {
    ackship: await repeat(runs, () => timed([BIN, '--version'])),
    node: await repeat(runs, () => timed(['-e', '0'])),
  };
}

const fmt = (n: number, digits = 2) => n.toFixed(digits);

const work = await mkdtemp(join(tmpdir(), 'ackship-bench-'));
try {
  const big = join(work, 'big.bin');
  const small = join(work, 'small.bin');
  await randomFile(big, BIG_MIB * 1024 * 1024);
  await randomFile(small, 10 * 1024 * 1024);
  const large = await bigFile(work, big);
  const stream = await streamPipe(work, big);
  const many = await manyItems(work);
  const rssSmall = await peakRss(work, small);
  const rssBig = await peakRss(work, big);
  const boot = await startup();
  const messages = await messageRows(ITEMS);
  const results = {
    machine: { node: process.version, cpus: (await import('node:os')).cpus().length },
    largeFile: {
      mib: BIG_MIB,
      ackshipSeconds: large.ackship,
      rawSeconds: large.raw,
      ratio: large.raw / large.ackship,
      goal: '>= 0.9',
    },
    stream: {
      mib: BIG_MIB,
      ackshipSeconds: stream.ackship,
      rawSeconds: stream.raw,
      ratio: stream.raw / stream.ackship,
      peakRssMiB: { sender: stream.senderMiB, receiver: stream.receiverMiB },
    },
    manyItems: {
      items: ITEMS,
      ackshipPerSecond: many.ackship,
      naivePerSecond: many.naive,
      ratio: many.ackship / many.naive,
      goal: '>= 1.0',
    },
    peakRssMiB: {
      small: rssSmall,
      big: rssBig,
      senderRatio: rssBig.sender / rssSmall.sender,
      receiverRatio: rssBig.receiver / rssSmall.receiver,
      goal: '<= 1.2',
    },
    messages,
    startup: {
      ackshipSeconds: boot.ackship,
      nodeSeconds: boot.node,
      ratio: boot.ackship / boot.node,
      goal: '<= 3',
    },
  };
  await mkdir(join(root, 'bench'), { recursive: true });
  await writeFile(join(root, 'bench', 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  const rows = [
    ['measure', 'ackship', 'baseline', 'ratio', 'goal'],
    [
      `${BIG_MIB} MiB file, send→recv (s)`,
      fmt(large.ackship),
      fmt(large.raw),
      fmt(results.largeFile.ratio),
      '>= 0.9 (raw/ackship time)',
    ],
    [
      `${BIG_MIB} MiB stream, stdin→stdout (s)`,
      fmt(stream.ackship),
      fmt(stream.raw),
      fmt(results.stream.ratio),
      '(raw/ackship time)',
    ],
    [
      'peak RSS of that stream (MiB, sender / receiver)',
      `${fmt(stream.senderMiB, 1)} / ${fmt(stream.receiverMiB, 1)}`,
      '',
      '',
      'bounded by --window',
    ],
    [
      `${ITEMS} × 1 KiB items (items/s)`,
      fmt(many.ackship, 0),
      fmt(many.naive, 0),
      fmt(results.manyItems.ratio),
      '>= 1.0',
    ],
    [
      'peak RSS sender (MiB, 1 GiB vs 10 MiB)',
      fmt(rssBig.sender, 1),
      fmt(rssSmall.sender, 1),
      fmt(results.peakRssMiB.senderRatio),
      '<= 1.2',
    ],
    [
      'peak RSS receiver (MiB, 1 GiB vs 10 MiB)',
      fmt(rssBig.receiver, 1),
      fmt(rssSmall.receiver, 1),
      fmt(results.peakRssMiB.receiverRatio),
      '<= 1.2',
    ],
    ...messages.flatMap((m) => [
      [
        `${m.measure}; TCP connections ${m.connections.ackship} vs ${m.connections.raw}`,
        fmt(m.ackship, 0),
        fmt(m.raw, 0),
        fmt(m.ratio),
        m.goal,
      ],
      [
        '  peak RSS sender / receiver (MiB)',
        `${m.rssMiB.ackship.sender} / ${m.rssMiB.ackship.receiver}`,
        `${m.rssMiB.raw.sender} / ${m.rssMiB.raw.receiver}`,
        '',
        '',
      ],
    ]),
    [
      '--version vs node -e 0 (s)',
      fmt(boot.ackship, 3),
      fmt(boot.node, 3),
      fmt(results.startup.ratio),
      '<= 3',
    ],
  ];
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] as string).length))) ?? [];
  for (const row of rows) console.log(row.map((cell, i) => cell.padEnd(widths[i] as number)).join('  '));
  console.log(`\nmedian of ${RUNS} runs each; written to bench/results.json`);
} finally {
  await rm(work, { recursive: true, force: true });
}
