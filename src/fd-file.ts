// An open file by its descriptor, for the per-item file work of both ends. A trip through
// libuv's thread pool costs about 40 µs of CPU here (more with a large pool, which contends on
// its queue), against a few µs for the call itself, and a small file made about ten of them
// through node:fs/promises. So calls that only touch an inode in memory (fstat, fchmod,
// futimes, close of a file opened for reading or with its writes settled) are made
// synchronously; those that may wait for the disk (open, read, write, truncate, fsync) go to
// the thread pool, where many of them wait at once. The sender's exceptions, openForReading and
// readNow, say why they may not wait long.
import {
  closeSync,
  constants,
  fchmodSync,
  fdatasync,
  fstatSync,
  fsync,
  ftruncate,
  futimesSync,
  open,
  openSync,
  read,
  readSync,
  type Stats,
  writev,
} from 'node:fs';

/** Adapts a node:fs callback call to a promise, without the FileHandle machinery's cost. */
function call<T>(start: (done: (err: NodeJS.ErrnoException | null, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => start((err, value) => (err ? reject(err) : resolve(value))));
}

export class FdFile {
  #fd: number | undefined;

  private constructor(fd: number) {
    this.#fd = fd;
  }

  /** Opens `path` with open(2) `flags` (and `mode` for a file it creates). */
  static async open(path: string, flags: number, mode = 0o600): Promise<FdFile> {
    return new FdFile(await call<number>((done) => open(path, flags, mode, done)));
  }

  /**
   * Opens `path` read-only, on this thread: the sender opens files its walk has just stat-ed, so
   * the call touches cached metadata only, and a trip through the pool would cost more.
   */
  static openForReading(path: string): FdFile {
    return new FdFile(openSync(path, constants.O_RDONLY));
  }

  get #open(): number {
    if (this.#fd === undefined) throw new Error('the file was closed');
    return this.#fd;
  }

  stat(): Stats {
    return fstatSync(this.#open);
  }

  /** read(2) on this thread, for a read small enough to cost less than a trip through the pool. */
  readNow(buffer: Buffer, offset: number, length: number, position: number): number {
    return readSync(this.#open, buffer, offset, length, position);
  }

  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
    const fd = this.#open;
    return call<number>((done) => read(fd, buffer, offset, length, position, done)).then((bytesRead) => ({
      bytesRead,
    }));
  }

  /** Writes all of `buffers`, in order, at `position`: one pwritev(2), unless it comes up short. */
  async writeAll(buffers: readonly Buffer[], position: number): Promise<void> {
    const fd = this.#open;
    let rest = buffers;
    for (let at = position; rest.length > 0; ) {
      const pending = rest;
      let written = await call<number>((done) => writev(fd, pending, at, done));
      at += written;
      // Drop what was written: whole buffers, then the front of the one it stopped in.
      let i = 0;
      while (i < pending.length && written >= (pending[i] as Buffer).length)
        written -= (pending[i++] as Buffer).length;
      rest = i < pending.length ? [(pending[i] as Buffer).subarray(written), ...pending.slice(i + 1)] : [];
    }
  }

  truncate(length: number): Promise<void> {
    const fd = this.#open;
    return call<void>((done) => ftruncate(fd, length, done));
  }

  datasync(): Promise<void> {
    const fd = this.#open;
    return call<void>((done) => fdatasync(fd, done));
  }

  sync(): Promise<void> {
    const fd = this.#open;
    return call<void>((done) => fsync(fd, done));
  }

  /** Sets what is given of the permission bits and the modification time (atime: now). */
  setAttributes(mode: number | undefined, mtimeMs: number | undefined): void {
    if (mode !== undefined) fchmodSync(this.#open, mode & 0o777);
    if (mtimeMs !== undefined) futimesSync(this.#open, new Date(), new Date(mtimeMs));
  }

  /** Closes the descriptor; later calls fail, a second close does nothing. */
  close(): void {
    if (this.#fd === undefined) return;
    const fd = this.#fd;
    this.#fd = undefined;
    closeSync(fd);
  }
}
