// One receiver per output directory: two would each sweep, compact and place into the other's
// state. The lock is a file, created only if absent (link), holding the holder's pid and host;
// a lock whose holder is gone (same host, no such process) is stale and taken over, so a
// receiver killed with SIGKILL or a power cut never keeps the directory from being served.

import { link, readFile, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { LocalIoError } from '../errors.js';

const LOCK_NAME = 'lock';

/** Whether process `pid` runs on this host (EPERM: it does, as another user). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class DirLock {
  readonly #path: string;
  readonly #content: string;

  private constructor(path: string, content: string) {
    this.#path = path;
    this.#content = content;
  }

  /** Takes the lock of the state directory `stateDir` (of output directory `dir`), or throws why not. */
  static async acquire(stateDir: string, dir: string): Promise<DirLock> {
    const path = join(stateDir, LOCK_NAME);
    const content = `${process.pid} ${hostname()}\n`;
    // Written whole beside it, then linked into place: a lock is never seen half written, so
    // an empty or garbled one can only be a crash's or a power cut's (not fsynced: lost, it is
    // no lock; kept, it is stale).
    const mine = `${path}.${process.pid}`;
    await writeFile(mine, content, { mode: 0o600 });
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          await link(mine, path);
          return new DirLock(path, content);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
        const held = await readFile(path, 'utf8').catch(() => '');
        const [pidText, host] = held.trim().split(' ');
        const pid = Number(pidText);
        const whole = Number.isSafeInteger(pid) && pid > 0 && host !== undefined;
        // Held on another host: not ours to judge.
        const stale = !whole || (host === hostname() && !alive(pid));
        if (!stale || attempt > 0) {
          throw new LocalIoError(
            `${dir} is already served by pid ${pid} on ${host} (${path}); stop that receiver, or remove the file if it is gone`,
          );
        }
        await unlink(path).catch(() => {});
      }
    } finally {
      await unlink(mine).catch(() => {});
    }
  }

  /** Lets the directory go, unless someone has taken the lock over meanwhile. */
  async release(): Promise<void> {
    const held = await readFile(this.#path, 'utf8').catch(() => undefined);
    if (held === this.#content) await unlink(this.#path).catch(() => {});
  }
}
