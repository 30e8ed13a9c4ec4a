// The tools a user would pick instead of ackship, run in the same benchmark: an rsync daemon
// over loopback (with and without --fsync), socat, and tar piped through socat for trees.
// Missing tools are installed with apt when we are root; otherwise their rows are skipped, and
// the bench says so.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';

export interface Tools {
  rsync: boolean;
  socat: boolean;
  /** What was installed, or why a tool is missing: printed with the table. */
  notes: string[];
}

const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;

export function ensureTools(): Tools {
  const notes: string[] = [];
  const missing = ['rsync', 'socat'].filter((tool) => !has(tool));
  if (missing.length > 0) {
    if (process.getuid?.() === 0 && has('apt-get')) {
      const installed = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', ...missing], {
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
        stdio: 'ignore',
      });
      notes.push(
        installed.status === 0
          ? `installed ${missing.join(', ')} with apt-get`
          : `apt-get could not install ${missing.join(', ')}`,
      );
    } else notes.push(`${missing.join(', ')} missing (not root, or no apt-get): those rows are skipped`);
  }
  return { rsync: has('rsync'), socat: has('socat'), notes };
}

/** A free loopback port, for tools that cannot bind port 0 and say which they got. */
export async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

/** `rsync --daemon` serving `root` as module `bench`, writable, on a loopback port. */
export async function startRsyncDaemon(
  work: string,
  root: string,
): Promise<{ url: (path: string, port?: number) => string; port: number; stop: () => Promise<void> }> {
  await mkdir(root, { recursive: true });
  const config = join(work, 'rsyncd.conf');
  await writeFile(
    config,
    // As root the daemon would drop to nobody, who cannot write here; otherwise it runs as us.
    `use chroot = no\n[bench]\n  path = ${root}\n  read only = no\n${process.getuid?.() === 0 ? '  uid = 0\n  gid = 0\n' : ''}`,
  );
  const port = await freePort();
  const child: ChildProcess = spawn(
    'rsync',
    ['--daemon', '--no-detach', `--config=${config}`, `--port=${port}`, '--address=127.0.0.1'],
    { stdio: 'ignore' },
  );
  // Ready once it accepts a listing of its modules.
  for (let i = 0; i < 100; i++) {
    if (spawnSync('rsync', [`rsync://127.0.0.1:${port}/`], { stdio: 'ignore' }).status === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    port,
    /** The module's `path`, reached on `via` (a proxy's port) or the daemon's own. */
    url: (path, via = port) => `rsync://127.0.0.1:${via}/bench/${path}`,
    stop: async () => {
      child.kill('SIGTERM');
      await once(child, 'close');
    },
  };
}
