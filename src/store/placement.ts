// Where a verified item ends up: under its name inside DIR (here), or on stdout
// (stdout-placement.ts). Both check the target before any data is accepted.
import { constants, linkSync, lstatSync, renameSync, type Stats, statSync, unlinkSync } from 'node:fs';
import { mkdir, open } from 'node:fs/promises';
import { normalize } from 'node:path';
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
  /**
   * At the OFFER: refuses an item that could never be placed, and finds the file already under
   * its name when that is a regular file of its size (a re-run may find it there).
   */
  admit(offer: ValidOffer): Promise<AlreadyThere | undefined>;
  /** Before a verified item is made durable: refuses it if it can no longer be placed. */
  check(item: PlacedItem): Promise<void>;
  /** Makes a verified, fsynced part visible; idempotent, so a crash between steps can be finished later. */
  place(partPath: string, item: PlacedItem): Promise<void>;
  /** Whether the item's final place holds exactly `size` bytes hashing to `hash` (a confirmed item). */
  holds(item: PlacedItem, size: number, hash: bigint): Promise<boolean>;
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

/**
 * What is at `path` (undefined: nothing), not following a symlink. Synchronous on purpose: a
 * lookup is answered from the kernel's caches, about 2 µs here, where a trip through the
 * thread pool costs about 40 µs of CPU (55 when it builds an ENOENT error), and every small
 * file's OFFER and commit make at least two. A cold directory costs a read of its blocks, as
 * it would cost rsync.
 */
function lookup(path: string): Stats | undefined {
  return lstatSync(path, { throwIfNoEntry: false });
}

/**
 * `dir`/`name`, for a normalized `dir` and a name of checked components (names.ts: none empty,
 * `.` or `..`): what path.join would give, without its normalizing, which made ~2 KiB of
 * garbage per small file here (five paths each).
 */
function under(dir: string, name: string): string {
  return dir.endsWith('/') ? dir + name : `${dir}/${name}`;
}

/** Items land under DIR: parents created, no symlink followed, no file replaced unless asked. */
export class DirectoryPlacement implements Placement {
  readonly #root: string;
  readonly #overwrite: boolean;
  readonly #dirSyncs = new Map<string, GroupCommit>();

  constructor(root: string, overwrite: boolean) {
    this.#root = normalize(root);
    this.#overwrite = overwrite;
  }

  /** Where the item's name leads under DIR. */
  #pathOf(item: PlacedItem): string {
    return item.parts.length === 0 ? this.#root : under(this.#root, item.parts.join('/'));
  }

  async admit(offer: ValidOffer): Promise<AlreadyThere | undefined> {
    const target = await this.#inspect(offer);
    if (target?.isFile() && !offer.directory && !offer.stream && target.size === offer.size) {
      const there = await this.#alreadyThere(offer, offer.size);
      if (there !== undefined) return there;
    }
    this.#refuseConflict(offer, target);
    return undefined;
  }

  async check(item: PlacedItem): Promise<void> {
    this.#refuseConflict(item, await this.#inspect(item));
  }

  /** What is under the item's name now (undefined: nothing), refusing names that cannot be placed. */
  async #inspect(item: PlacedItem): Promise<Stats | undefined> {
    const path = this.#pathOf(item);
    if (Buffer.byteLength(path) >= PATH_MAX) {
      throw new PlacementRefused(
        RejectCode.BadName,
        `name is too long for this receiver: under its directory it passes PATH_MAX (${PATH_MAX} bytes)`,
      );
    }
    await this.#parentDirs(item.parts, false);
    try {
      return lookup(path);
    } catch (err) {
      // Refused now, for good, rather than once its data came and at every retry after.
      if (errno(err) === 'ENAMETOOLONG')
        throw new PlacementRefused(
          RejectCode.BadName,
          `${item.name} is too long for the receiver's filesystem`,
        );
      return undefined;
    }
  }

  #refuseConflict(item: PlacedItem, target: Stats | undefined): void {
    if (target?.isDirectory() && !item.directory) {
      throw new PlacementRefused(RejectCode.BadName, `${item.name} is a directory`);
    }
    if (target && !target.isDirectory() && item.directory) {
      throw new PlacementRefused(RejectCode.BadName, `${item.name} exists and is not a directory`);
    }
    if (target && !target.isDirectory() && !this.#overwrite) {
      throw new PlacementRefused(
        RejectCode.Exists,
        `${item.name} exists (the receiver runs without --overwrite)`,
      );
    }
  }

  async makeDirectory(offer: PlacedItem): Promise<void> {
    const parent = await this.#parentDirs(offer.parts, true);
    await mkdir(this.#pathOf(offer), { mode: (offer.mode ?? 0o755) & 0o777 }).catch((err) => {
      if (errno(err) !== 'EEXIST') throw err; // an earlier run made it
    });
    await this.#syncDir(parent);
  }

  async place(partPath: string, offer: PlacedItem): Promise<void> {
    const parent = await this.#parentDirs(offer.parts, true);
    const target = this.#pathOf(offer);
    // A missing part is an error, never "already placed": holds() is how that is found out.
    // Synchronous, like lookup(): both directories' entries were just looked up or written, so
    // these touch only what is in memory, and they save two thread-pool trips per item.
    if (this.#overwrite) renameSync(partPath, target);
    else {
      // link + unlink never replaces a file that appeared meanwhile, as rename would.
      try {
        linkSync(partPath, target);
      } catch (err) {
        if (errno(err) !== 'EEXIST') throw err;
        const [a, b] = [statSync(partPath), statSync(target)];
        if (a.ino !== b.ino || a.dev !== b.dev) {
          throw new PlacementRefused(
            RejectCode.Exists,
            `${offer.name} exists (the receiver runs without --overwrite)`,
          );
        }
      }
      try {
        unlinkSync(partPath);
      } catch (err) {
        if (errno(err) !== 'ENOENT') throw err;
      }
    }
    await this.#syncDir(parent);
  }

  /** The regular file of `size` bytes under the item's name, hashed; undefined if it cannot be read. */
  async #alreadyThere(item: PlacedItem, size: number): Promise<AlreadyThere | undefined> {
    const found = await this.#hashOf(item, size);
    if (found === undefined) return undefined;
    const confirm = async () => {
      const parent = await this.#parentDirs(item.parts, false);
      const file = await open(this.#pathOf(item), 'r');
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
    const within = await this.#parentDirs(item.parts, false).then(
      () => true,
      () => false,
    );
    return within && (await this.#hashOf(item, size))?.hash === hash;
  }

  /**
   * The xxh64 of the regular file under the item's name (whose parents the caller checked) if it
   * has `size` bytes, and which file it was.
   */
  async #hashOf(item: PlacedItem, size: number): Promise<{ hash: bigint; identity: string } | undefined> {
    try {
      const file = await open(this.#pathOf(item), constants.O_RDONLY | constants.O_NOFOLLOW);
      try {
        const info = await file.stat();
        if (!info.isFile() || info.size !== size) return undefined;
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
      const next = under(dir, part);
      let st: Stats | undefined;
      try {
        st = lookup(next);
      } catch {
        st = undefined;
      }
      if (st === undefined) {
        if (!create) return dir; // created at placement time
        await mkdir(next, { mode: 0o755 }).catch((err) => {
          if (errno(err) !== 'EEXIST') throw err;
        });
        await this.#syncDir(dir);
        const made = lookup(next);
        if (!made?.isDirectory())
          throw new PlacementRefused(RejectCode.BadName, `${part} is not a directory`);
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
