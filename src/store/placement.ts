// Where a verified item ends up: under its name inside DIR (here), or on stdout
// (stdout-placement.ts). Both check the target before any data is accepted.
import type { Stats } from 'node:fs';
import { link, lstat, mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { createHasher, hashFilePrefix } from '../hash.js';
import { RejectCode } from '../protocol/constants.js';
import type { ValidOffer } from '../protocol/receiver-machine.js';
import { fsyncDir } from './fsync-dir.js';
import { GroupCommit } from './group-commit.js';
import type { OpenResult } from './item-writer.js';
import type { ConfirmedJournal } from './journal.js';

export class PlacementRefused extends Error {
  constructor(
    readonly rejectCode: RejectCode,
    message: string,
  ) {
    super(message);
  }
}

/** What placement needs to know of an item. */
export type PlacedItem = Pick<ValidOffer, 'id' | 'name' | 'parts' | 'directory' | 'mode'>;

export interface Placement {
  /** Refuses, before any data flows, an item that could never be placed. */
  check(item: PlacedItem): Promise<void>;
  /** Makes a verified, fsynced part visible; idempotent, so a crash between steps can be finished later. */
  place(partPath: string, item: PlacedItem): Promise<void>;
  /** Whether the item's final place holds exactly `size` bytes hashing to `hash` (a confirmed item). */
  holds(item: PlacedItem, size: number, hash: bigint): Promise<boolean>;
  /**
   * The file already under the item's name when it is a regular file of `size` bytes: a re-run
   * may find it already there.
   */
  alreadyThere(item: PlacedItem, size: number): Promise<AlreadyThere | undefined>;
  /** Creates a directory item (v2), durably; idempotent. */
  makeDirectory(item: PlacedItem): Promise<void>;
  /** v3: takes a stream item itself instead of a part file (stdout, written as it arrives). */
  openStream?(offer: ValidOffer, journal: ConfirmedJournal): Promise<OpenResult>;
}

export interface AlreadyThere {
  hash: bigint;
  /** --overwrite: a sender with other bytes replaces it, rather than meeting "exists". */
  replaceable: boolean;
  /**
   * For a confirmation: false if the file changed since it was hashed (another inode, size,
   * mtime or ctime: it is not read again), else it is fsynced with its directory and true.
   */
  confirm(): Promise<boolean>;
}

/** What tells a file and its content apart without reading it: any write changes its ctime. */
function identity(info: Stats): string {
  return `${info.dev}:${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`;
}

/** Linux's limit on a path handed to a system call, counting its final NUL. */
const PATH_MAX = 4096;

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

/** Items land under DIR: parents created, no symlink followed, no file replaced unless asked. */
export class DirectoryPlacement implements Placement {
  readonly #root: string;
  readonly #overwrite: boolean;
  readonly #dirSyncs = new Map<string, GroupCommit>();

  constructor(root: string, overwrite: boolean) {
    this.#root = root;
    this.#overwrite = overwrite;
  }

  async check(offer: PlacedItem): Promise<void> {
    const path = join(this.#root, ...offer.parts);
    if (Buffer.byteLength(path) >= PATH_MAX) {
      throw new PlacementRefused(
        RejectCode.BadName,
        `name is too long for this receiver: under its directory it passes PATH_MAX (${PATH_MAX} bytes)`,
      );
    }
    await this.#parentDirs(offer.parts, false);
    const target = await lstat(path).catch((err) => {
      // Refused now, for good, rather than once its data came and at every retry after.
      if (errno(err) === 'ENAMETOOLONG')
        throw new PlacementRefused(
          RejectCode.BadName,
          `${offer.name} is too long for the receiver's filesystem`,
        );
      return undefined;
    });
    if (target?.isDirectory() && !offer.directory) {
      throw new PlacementRefused(RejectCode.BadName, `${offer.name} is a directory`);
    }
    if (target && !target.isDirectory() && offer.directory) {
      throw new PlacementRefused(RejectCode.BadName, `${offer.name} exists and is not a directory`);
    }
    if (target && !target.isDirectory() && !this.#overwrite) {
      throw new PlacementRefused(
        RejectCode.Exists,
        `${offer.name} exists (the receiver runs without --overwrite)`,
      );
    }
  }

  async makeDirectory(offer: PlacedItem): Promise<void> {
    const parent = await this.#parentDirs(offer.parts, true);
    await mkdir(join(this.#root, ...offer.parts), { mode: (offer.mode ?? 0o755) & 0o777 }).catch((err) => {
      if (errno(err) !== 'EEXIST') throw err; // an earlier run made it
    });
    await this.#syncDir(parent);
  }

  async place(partPath: string, offer: PlacedItem): Promise<void> {
    const parent = await this.#parentDirs(offer.parts, true);
    const target = join(this.#root, ...offer.parts);
    // A missing part is an error, never "already placed": holds() is how that is found out.
    if (this.#overwrite) await rename(partPath, target);
    else {
      // link + unlink never replaces a file that appeared meanwhile, as rename would.
      await link(partPath, target).catch(async (err) => {
        if (errno(err) !== 'EEXIST') throw err;
        const [a, b] = await Promise.all([stat(partPath), stat(target)]);
        if (a.ino !== b.ino || a.dev !== b.dev) {
          throw new PlacementRefused(
            RejectCode.Exists,
            `${offer.name} exists (the receiver runs without --overwrite)`,
          );
        }
      });
      await unlink(partPath).catch((err) => {
        if (errno(err) !== 'ENOENT') throw err;
      });
    }
    await this.#syncDir(parent);
  }

  async alreadyThere(item: PlacedItem, size: number): Promise<AlreadyThere | undefined> {
    if (item.directory) return undefined;
    const found = await this.#hashOf(item, size);
    if (found === undefined) return undefined;
    const confirm = async () => {
      const parent = await this.#parentDirs(item.parts, false);
      const file = await open(join(this.#root, ...item.parts), 'r');
      try {
        if (identity(await file.stat()) !== found.identity) return false;
        await file.sync();
      } finally {
        await file.close();
      }
      await this.#syncDir(parent);
      return true;
    };
    return { hash: found.hash, replaceable: this.#overwrite, confirm };
  }

  async holds(item: PlacedItem, size: number, hash: bigint): Promise<boolean> {
    return (await this.#hashOf(item, size))?.hash === hash;
  }

  /** The xxh64 of the regular file under the item's name if it has `size` bytes, and which file it was. */
  async #hashOf(item: PlacedItem, size: number): Promise<{ hash: bigint; identity: string } | undefined> {
    try {
      await this.#parentDirs(item.parts, false);
      const target = join(this.#root, ...item.parts);
      if (!(await lstat(target)).isFile()) return undefined;
      const file = await open(target, 'r');
      try {
        const info = await file.stat();
        if (info.size !== size) return undefined;
        const hasher = createHasher();
        await hashFilePrefix(file, size, hasher);
        return { hash: hasher.digest(), identity: identity(info) };
      } finally {
        await file.close();
      }
    } catch {
      return undefined;
    }
  }

  /** fsync of a directory, shared by the items placed in it at about the same time. */
  async #syncDir(path: string): Promise<void> {
    let group = this.#dirSyncs.get(path);
    if (group === undefined) {
      group = new GroupCommit(() => fsyncDir(path));
      this.#dirSyncs.set(path, group);
    }
    try {
      await group.run();
    } finally {
      if (group.idle) this.#dirSyncs.delete(path);
    }
  }

  /**
   * Walks the name's parent components inside DIR, refusing any that is a symlink or not a
   * directory, so nothing is ever written outside DIR. With `create`, makes missing ones
   * (and fsyncs each new one's parent so the new entry survives a crash).
   */
  async #parentDirs(parts: string[], create: boolean): Promise<string> {
    let dir = this.#root;
    for (const part of parts.slice(0, -1)) {
      const next = join(dir, part);
      const st = await lstat(next).catch(() => undefined);
      if (st === undefined) {
        if (!create) return dir; // created at placement time
        await mkdir(next, { mode: 0o755 }).catch((err) => {
          if (errno(err) !== 'EEXIST') throw err;
        });
        await this.#syncDir(dir);
        const made = await lstat(next);
        if (!made.isDirectory()) throw new PlacementRefused(RejectCode.BadName, `${part} is not a directory`);
      } else if (st.isSymbolicLink()) {
        throw new PlacementRefused(RejectCode.BadName, `name goes through a symlink (${part})`);
      } else if (!st.isDirectory()) {
        throw new PlacementRefused(
          RejectCode.BadName,
          `name goes through a file that is not a directory (${part})`,
        );
      }
      dir = next;
    }
    return dir;
  }
}
