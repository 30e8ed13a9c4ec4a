// Whether an item can fit on the receiver's disk, asked before its data is accepted. One statfs
// per item was a tenth of a small file's system calls; a reading serves for a second, and an
// item is refused only on a fresh one. A stale reading can only let through an item that a
// fresh one would also have let through a second ago: if the disk fills meanwhile, the write
// fails with ENOSPC and the item is refused as "no space" all the same.
import { statfs } from 'node:fs/promises';
import { RejectCode } from '../protocol/constants.js';
import { PlacementRefused } from './placement.js';

/** How long one reading of the free space is trusted for letting items through. */
const READING_TTL_MS = 1000;

export class FreeSpace {
  readonly #path: string;
  #reading: { free: number; at: number } | undefined;

  /** `path`: any path on the filesystem the items are written to. */
  constructor(path: string) {
    this.#path = path;
  }

  /** Throws "no space" when `needed` bytes do not fit, by a reading taken now. */
  async ensure(needed: number, now = performance.now()): Promise<void> {
    if (needed <= 0) return;
    const cached = this.#reading;
    if (cached !== undefined && now - cached.at < READING_TTL_MS && needed <= cached.free) return;
    const fs = await statfs(this.#path);
    const free = fs.bavail * fs.bsize;
    this.#reading = { free, at: now };
    if (needed > free) {
      throw new PlacementRefused(
        RejectCode.NoSpace,
        `no space: ${needed} bytes needed, ${free} free on the receiver`,
      );
    }
  }
}
