// LazyFS (../shared/tools/lazyfs): a FUSE filesystem that keeps written data in its own cache
// until the file is fsynced and drops what was never synced on command, as a power cut would.
// `kill -9` of a receiver is not power loss (the kernel still writes its page cache out); this is.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';

/** The LazyFS binary: $LAZYFS_BIN, else where ../shared/tools/lazyfs/build.sh puts it. */
export const LAZYFS_BIN =
  process.env.LAZYFS_BIN ?? join(process.env.TMPDIR ?? '/tmp', 'lazyfs-build', 'lazyfs', 'build', 'lazyfs');

/** Why the power-loss tests cannot run here, or false when they can. */
export function lazyFsUnavailable(): string | false {
  if (process.getuid?.() !== 0) return 'power-loss tests mount a FUSE filesystem, which needs root';
  if (!existsSync('/dev/fuse')) return 'there is no /dev/fuse';
  if (!existsSync(LAZYFS_BIN))
    return `LazyFS is not built at ${LAZYFS_BIN} (.ci/run builds it with ../shared/tools/lazyfs/build.sh)`;
  try {
    execFileSync('fusermount3', ['-V'], { stdio: 'ignore' });
  } catch {
    return 'fusermount3 is not installed';
  }
  return false;
}

function mounted(path: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[4] === path);
}

/** Whether the mount point still answers (a crashed FUSE filesystem says ENOTCONN). */
function answers(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Waits, bounded, for a condition no event announces (a mount showing in mountinfo). */
export async function until(what: string, condition: () => boolean, ms = 10_000): Promise<void> {
  for (const started = Date.now(); !condition(); await delay(20)) {
    if (Date.now() - started > ms) throw new Error(`timed out waiting for ${what}`);
  }
}

export interface LazyFs {
  /** Where to work: the mounted filesystem. */
  readonly mnt: string;
  /** Drops every byte that was not fsynced, as a power cut would. */
  powerCut(): Promise<void>;
  /**
   * Arms a crash at one operation (`lazyfs::crash::timing=before::op=link::to_rgx=NAME`): LazyFS
   * drops what was not synced and exits when it is reached. Resolves once it did.
   */
  crashAt(fault: string): Promise<void>;
  /** Unmounts and mounts again over the same backing directory: the machine came back. */
  remount(): Promise<void>;
}

/** Mounts LazyFS over a fresh backing directory; unmounted and removed when the test ends. */
export async function mountLazyFs(t: TestContext): Promise<LazyFs> {
  // Its own directory, removed only after the unmount (a test's temp dir may go first).
  // No "-" before the random part: LazyFS silently ignores a --config-path containing "-o" (any
  // case), and mkdtemp's random letters can start with an o.
  const base = await mkdtemp(join(tmpdir(), 'ackship_lazyfs_'));
  if (/-o/i.test(base)) throw new Error(`LazyFS would ignore a config under ${base} (it contains "-o")`);
  const root = join(base, 'root');
  const mnt = join(base, 'mnt');
  const faults = join(base, 'faults.fifo');
  const done = join(base, 'done.fifo');
  const config = join(base, 'lazyfs.toml');
  await mkdir(root, { recursive: true });
  await mkdir(mnt, { recursive: true });
  execFileSync('mkfifo', [faults, done]);
  await writeFile(
    config,
    [
      '[faults]',
      `fifo_path="${faults}"`,
      `fifo_path_completed="${done}"`,
      '[cache]',
      'apply_eviction=false',
      '[cache.simple]',
      'custom_size="2gb"',
      'blocks_per_page=1',
      '[filesystem]',
      'log_all_operations=false',
      `logfile="${join(base, 'lazyfs.log')}"`,
      '',
    ].join('\n'),
  );
  // LazyFS opens the completion FIFO once for writing and keeps it: one reader for each LazyFS
  // process's whole life (a reader sees EOF when that process ends).
  let completed = '';
  const completions: Array<() => void> = [];
  let reader: ChildProcess | undefined;
  const listen = () => {
    completed = '';
    reader?.kill();
    reader = spawn('cat', [done], { stdio: ['ignore', 'pipe', 'ignore'] });
    reader.stdout?.on('data', (chunk: Buffer) => {
      completed += chunk;
      for (const wake of completions.splice(0)) wake();
    });
  };
  let fs: ChildProcess | undefined;
  const mount = async (): Promise<void> => {
    listen();
    fs = spawn(
      LAZYFS_BIN,
      [
        mnt,
        '--config-path',
        config,
        '-o',
        'allow_other',
        '-o',
        'modules=subdir',
        '-o',
        `subdir=${root}`,
        '-f',
      ],
      { stdio: 'ignore' },
    );
    await until('LazyFS to mount', () => mounted(mnt));
  };
  const unmount = async () => {
    if (fs === undefined) return;
    const exited = fs.exitCode === null && fs.signalCode === null ? once(fs, 'exit') : Promise.resolve();
    if (!mounted(mnt) || !answers(mnt)) fs.kill('SIGKILL'); // crashed: nothing left to unmount cleanly
    if (mounted(mnt)) {
      try {
        execFileSync('fusermount3', ['-u', mnt], { stdio: 'ignore' });
      } catch {
        execFileSync('fusermount3', ['-uz', mnt], { stdio: 'ignore' });
      }
    }
    await exited;
    fs = undefined;
  };
  t.after(async () => {
    await unmount().catch(() => {});
    reader?.kill();
    await rm(base, { recursive: true, force: true });
  });
  await mount();
  return {
    mnt,
    async powerCut() {
      completed = '';
      await writeFile(faults, 'lazyfs::clear-cache\n');
      while (!completed.includes('finished::clear-cache'))
        await new Promise<void>((resolve) => completions.push(resolve));
    },
    async crashAt(fault: string) {
      await writeFile(faults, `lazyfs::crash::${fault}\n`);
      // The process may linger: the filesystem is gone once its mount is (or stops answering).
      await until('LazyFS to crash', () => !mounted(mnt) || !answers(mnt), 60_000);
    },
    async remount() {
      await unmount();
      await mount();
    },
  };
}
