// Open part files, bounded over all connections (a receiver's file descriptors are finite), and
// never held by a peer that stopped sending: when every permit is taken, the file of the part
// least recently used, with no I/O under way, is closed (its part stays on disk, resumable) and
// its permit goes to the one who asked. A peer that holds hundreds of accepted items after one
// byte each therefore holds no descriptor at all, and cannot queue a legitimate sender out.

/** A holder of one open file that can give it up, reopening when next used. */
export interface FileUser {
  /** No I/O under way: the file may be closed now. */
  readonly idle: boolean;
  /** Closes the file; the next use reopens it. */
  evict(): Promise<void>;
}

export class FilePermits {
  #free: number;
  /** Holders, least recently used first (a Map keeps insertion order). */
  readonly #users = new Map<FileUser, true>();
  readonly #waiting: Array<() => void> = [];

  constructor(permits: number) {
    this.#free = permits;
  }

  /** Resolves once `user` holds a permit, closing the idlest holder's file if none is free. */
  async acquire(user: FileUser): Promise<void> {
    for (;;) {
      if (this.#free > 0) {
        this.#free--;
        this.#users.set(user, true);
        return;
      }
      const victim = this.#leastRecentIdle();
      if (victim !== undefined) {
        this.#users.delete(victim);
        await victim.evict();
        this.#free++;
        continue;
      }
      // Every open file has I/O under way, which ends by itself: wait for one to be released.
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    }
  }

  /** `user` used its file: the last to be closed for another. */
  touch(user: FileUser): void {
    if (this.#users.delete(user)) this.#users.set(user, true);
  }

  release(user: FileUser): void {
    if (!this.#users.delete(user)) return;
    this.#free++;
    this.#waiting.shift()?.();
  }

  #leastRecentIdle(): FileUser | undefined {
    for (const user of this.#users.keys()) if (user.idle) return user;
    return undefined;
  }
}
