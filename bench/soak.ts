// `npm run soak`: mixed items (files, trees, stdin streams) sent through a proxy that gives
// every third connection a random fault, for SOAK_SECONDS (default 60), against one real
// receiver. SOAK_FAULTS (comma-separated names from the list below) narrows the faults.
// Prints items sent, confirmed, lost and duplicated, and the faults injected; exits 1 if
// anything confirmed was lost or anything was stored twice. Bounded in time and rounds; kept
// out of CI.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ConnectionFaults, FaultProxy } from '../test/support/proxy.js';

const BIN = fileURLToPath(new URL('../../bin/run.cjs', import.meta.url));
const SECONDS = Number(process.env.SOAK_SECONDS ?? 60);
const MAX_ROUNDS = 10_000;

const allFaults: Array<[string, () => ConnectionFaults]> = [
  ['none', () => ({})],
  ['reset while sending', () => ({ request: { cutAfter: randomInt(0, 400_000) } })],
  ['reset while replying', () => ({ reply: { cutAfter: randomInt(0, 300) } })],
  ['reply swallowed', () => ({ reply: { swallowAfter: randomInt(8, 300) } })],
  ['stall', () => ({ stallAfter: randomInt(0, 400_000) })],
  ['payload byte flipped', () => ({ request: { corruptAt: randomInt(100, 400_000) } })],
  ['reply byte flipped', () => ({ reply: { corruptAt: randomInt(8, 300) } })],
];
// SOAK_FAULTS=stall,reply swallowed (say) keeps only those kinds.
const only = process.env.SOAK_FAULTS?.split(',');
const faultKinds = allFaults.filter(([name]) => name === 'none' || only === undefined || only.includes(name));
const injected = new Map<string, number>(faultKinds.map(([name]) => [name, 0]));

/** One connection in three gets a fault, so that items get through between faults. */
function randomFaults(): ConnectionFaults {
  const [name, make] = (randomInt(3) === 0 ? faultKinds[randomInt(1, faultKinds.length)] : faultKinds[0]) as [
    string,
    () => ConnectionFaults,
  ];
  injected.set(name, (injected.get(name) ?? 0) + 1);
  return make();
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

function run(
  args: string[],
  stdin?: Buffer,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk;
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk;
  });
  child.stdin.on('error', () => {});
  child.stdin.end(stdin);
  return once(child, 'close').then(([code]) => ({ code: code as number | null, stdout, stderr }));
}

async function startReceiver(out: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [BIN, 'recv', '--listen', '127.0.0.1:0', '--out', out, '--quiet'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  return new Promise((resolve, reject) => {
    // Read stderr to the end: a receiver is not to be judged by a pipe we stopped reading.
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk;
      const match = /listening on 127\.0\.0\.1:(\d+)/.exec(stderr);
      if (match) resolve({ child, port: Number(match[1]) });
    });
    child.on('close', () => reject(new Error(`the receiver ended: ${stderr}`)));
  });
}

/** Every file under `dir`, by name relative to it, skipping the receiver's state. */
async function files(dir: string): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    const name = relative(dir, path);
    if (entry.isFile() && !name.startsWith('.ackship')) found.set(name, sha256(await readFile(path)));
  }
  return found;
}

const work = await mkdtemp(join(tmpdir(), 'ackship-soak-'));
const out = join(work, 'out');
const receiver = await startReceiver(out);
const proxy = await FaultProxy.start(undefined, { target: receiver.port, faultsFor: randomFaults });
/** What each sent name should hold, and whether its sender saw it confirmed. */
const sent = new Map<string, { hash: string; confirmed: boolean }>();
const exits = new Map<string, number>();
/** The last line a failed sender printed, per exit status. */
const reasons = new Map<string, string>();
const deadline = performance.now() + SECONDS * 1000;
let rounds = 0;
try {
  for (; rounds < MAX_ROUNDS && performance.now() < deadline; rounds++) {
    const src = join(work, 'src', String(rounds));
    await mkdir(join(src, 'tree', 'empty'), { recursive: true });
    const args = [
      'send',
      `127.0.0.1:${proxy.port}`,
      '--json',
      '--timeout',
      '1',
      '--retry-delay',
      '0.05',
      '--retries',
      '30',
    ];
    const kind = rounds % 3;
    let stdin: Buffer | undefined;
    if (kind === 0) {
      for (let i = 0; i < 3; i++) {
        const bytes = randomBytes(randomInt(0, 600_000));
        await writeFile(join(src, `r${rounds}-f${i}.bin`), bytes);
        sent.set(`r${rounds}-f${i}.bin`, { hash: sha256(bytes), confirmed: false });
      }
      args.push(...[0, 1, 2].map((i) => join(src, `r${rounds}-f${i}.bin`)));
    } else if (kind === 1) {
      for (let i = 0; i < 8; i++) {
        const bytes = randomBytes(randomInt(0, 20_000));
        await writeFile(join(src, 'tree', `t${i}`), bytes);
        sent.set(`r${rounds}-tree/t${i}`, { hash: sha256(bytes), confirmed: false });
      }
      args.push('-r', join(src, 'tree'), '--name', `r${rounds}-tree`);
    } else {
      stdin = randomBytes(randomInt(0, 2_000_000));
      sent.set(`r${rounds}-stream.bin`, { hash: sha256(stdin), confirmed: false });
      args.push('-', '--name', `r${rounds}-stream.bin`);
    }
    const result = await run(args, stdin);
    exits.set(String(result.code), (exits.get(String(result.code)) ?? 0) + 1);
    if (result.code !== 0) reasons.set(String(result.code), result.stderr.trim().split('\n').at(-1) ?? '');
    for (const line of result.stdout.split('\n').filter(Boolean)) {
      const record = JSON.parse(line) as { event: string; name: string; status?: string };
      const item = sent.get(record.name);
      if (record.event === 'item' && record.status === 'confirmed' && item !== undefined)
        item.confirmed = true;
    }
    await rm(src, { recursive: true });
  }
  const stored = await files(out);
  const confirmed = [...sent.values()].filter((s) => s.confirmed).length;
  const lost = [...sent]
    .filter(([name, s]) => s.confirmed && stored.get(name) !== s.hash)
    .map(([name]) => name);
  const strangers = [...stored.keys()].filter((name) => !sent.has(name));
  const corrupt = [...stored].filter(([name, hash]) => sent.has(name) && sent.get(name)?.hash !== hash);
  const partials = await readdir(join(out, '.ackship', 'parts'));
  const rows: Array<[string, number | string]> = [
    ['seconds', SECONDS],
    ['sender runs', rounds],
    ['sender exit statuses', [...exits].map(([code, n]) => `${code} ×${n}`).join(', ')],
    ['items sent', sent.size],
    ['confirmed', confirmed],
    ['not confirmed (sender exited non-zero)', sent.size - confirmed],
    ['lost (confirmed, missing or different)', lost.length],
    ['duplicated or unknown files', strangers.length],
    ['stored with other content', corrupt.length],
    ['partials left (resumable)', partials.length],
    ...[...injected].map(([name, count]): [string, number] => [`fault: ${name}`, count]),
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  for (const [label, value] of rows) console.log(`${label.padEnd(width)}  ${value}`);
  for (const [code, reason] of reasons) console.log(`exit ${code}, for example: ${reason}`);
  if (lost.length > 0 || strangers.length > 0 || corrupt.length > 0) {
    console.log(
      `\nFAILED: lost ${lost.join(', ')}; unknown ${strangers.join(', ')}; corrupt ${corrupt.length}`,
    );
    process.exitCode = 1;
  }
} finally {
  proxy.close();
  receiver.child.kill('SIGTERM');
  await once(receiver.child, 'close');
  await rm(work, { recursive: true, force: true });
}
