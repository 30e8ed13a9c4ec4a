// The sender's memory of transfer ids (PROTOCOL.md §7): an item not yet confirmed keeps its id
// across runs, so re-running a failed `send` resumes the receiver's partial, and a run whose
// confirmation was lost is answered with that confirmation instead of making a second copy.
//
// One file per run, written once before the first OFFER (a tree of 100,000 files costs one
// write, not 100,000), holding every item's key and id. At the end the run keeps only the
// entries still unsettled, and removes the files of earlier runs whose entries it took over.
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { TRANSFER_ID_LEN } from '../protocol/constants.js';

/** Where the ids live: $ACKSHIP_STATE_DIR, else $XDG_STATE_HOME/ackship, else ~/.local/state/ackship. */
export function defaultStateDir(env: NodeJS.ProcessEnv): string {
  if (env.ACKSHIP_STATE_DIR) return env.ACKSHIP_STATE_DIR;
  return join(env.XDG_STATE_HOME || join(homedir(), '.local', 'state'), 'ackship');
}

type Entries = Record<string, string>;

/**
 * The ids of one run's items, by the item's index: its key's id from an earlier run, else a new
 * random one. All of them sit in one buffer, and a settled item is a byte, so the run's memory
 * for its ids is 17 bytes an item rather than a Buffer object and Map and Set entries.
 */
export class TransferIds {
  readonly #file: string;
  /** Each item's resume key (undefined: it cannot resume across runs), by index. */
  readonly #keys: readonly (string | undefined)[];
  /** TRANSFER_ID_LEN bytes per item, by index. */
  readonly #ids: Buffer;
  /** 1 once the item is settled, by index. */
  readonly #settled: Uint8Array;
  /** Earlier runs' files, and the keys each holds. */
  readonly #earlier: Array<{ file: string; keys: string[] }>;

  readonly #readOnly: boolean;

  private constructor(
    dir: string,
    keys: readonly (string | undefined)[],
    earlier: Array<{ file: string; keys: string[] }>,
    readOnly: boolean,
  ) {
    this.#readOnly = readOnly;
    this.#file = join(dir, `${Date.now()}-${randomBytes(6).toString('hex')}.json`);
    this.#keys = keys;
    this.#earlier = earlier;
    // One call for all new ids: a call per id cost 13 ms of a 2,000-file run's start.
    this.#ids = randomBytes(TRANSFER_ID_LEN * keys.length);
    this.#settled = new Uint8Array(keys.length);
  }

  /**
   * Assigns an id to every item: the one an earlier run left pending for its key, or a new
   * random one, and records the keyed ones before any is offered. Without a writable state dir,
   * retries within this run still resume; re-runs start over. `readOnly` (a dry run) reads the
   * earlier runs' ids and writes nothing, now or at close.
   */
  static async assign(
    stateDir: string,
    keys: readonly (string | undefined)[],
    readOnly = false,
  ): Promise<TransferIds> {
    const dir = join(stateDir, 'pending');
    const earlier: Array<{ file: string; keys: string[] }> = [];
    const known = new Map<string, string>();
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      if (!name.endsWith('.json')) continue;
      const entries = await readEntries(join(dir, name));
      earlier.push({ file: join(dir, name), keys: Object.keys(entries) });
      for (const [key, id] of Object.entries(entries)) known.set(key, id);
    }
    const ids = new TransferIds(dir, keys, earlier, readOnly);
    if (known.size > 0) {
      keys.forEach((key, i) => {
        const id = key === undefined ? undefined : known.get(key);
        if (id !== undefined) ids.#ids.write(id, i * TRANSFER_ID_LEN, 'hex');
      });
    }
    if (readOnly) return ids;
    await mkdir(dir, { recursive: true, mode: 0o700 })
      .then(() => ids.#save())
      .catch(() => {});
    return ids;
  }

  /** The id of item `index`: a view of the shared buffer. */
  idAt(index: number): Buffer {
    if (!(index >= 0 && index < this.#keys.length)) throw new RangeError(`no transfer id for item ${index}`);
    const at = index * TRANSFER_ID_LEN;
    return this.#ids.subarray(at, at + TRANSFER_ID_LEN);
  }

  /** Item `index` is settled (confirmed, or refused for good): a later run sends it anew. */
  settle(index: number): void {
    this.#settled[index] = 1;
  }

  /** Keeps what is still pending, for the next run; drops what this run took over. */
  async close(): Promise<void> {
    if (this.#readOnly) return;
    try {
      if (this.#keys.every((key, i) => key === undefined || this.#settled[i] === 1)) await unlink(this.#file);
      else await this.#save();
      if (this.#earlier.length > 0) {
        const ours = new Set(this.#keys);
        for (const { file, keys } of this.#earlier) {
          if (keys.every((key) => ours.has(key))) await unlink(file).catch(() => {});
        }
      }
    } catch {
      // The state dir is a convenience for resume; losing it never loses data.
    }
  }

  async #save(): Promise<void> {
    const entries: Entries = {};
    this.#keys.forEach((key, i) => {
      if (key !== undefined && this.#settled[i] === 0) entries[key] = this.idAt(i).toString('hex');
    });
    await writeFile(`${this.#file}.tmp`, JSON.stringify(entries), { mode: 0o600 });
    await rename(`${this.#file}.tmp`, this.#file);
  }
}

const TRANSFER_ID_HEX = new RegExp(`^[0-9a-f]{${TRANSFER_ID_LEN * 2}}$`);

/**
 * A state file's entries, keeping only those whose id is a whole transfer id: a damaged file
 * loses its resume points (the items are sent anew), never shifts a frame's layout.
 */
async function readEntries(path: string): Promise<Entries> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch {
    return {};
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return {};
  const entries: Entries = {};
  for (const [key, id] of Object.entries(parsed)) {
    if (typeof id === 'string' && TRANSFER_ID_HEX.test(id)) entries[key] = id;
  }
  return entries;
}
