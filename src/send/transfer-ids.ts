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

export class TransferIds {
  readonly #file: string;
  /** key → id of this run's items. */
  readonly #ids = new Map<string, Buffer>();
  readonly #settled = new Set<string>();
  /** Earlier runs' files, and the keys each holds. */
  readonly #earlier: Array<{ file: string; keys: string[] }>;

  readonly #readOnly: boolean;

  private constructor(dir: string, earlier: Array<{ file: string; keys: string[] }>, readOnly: boolean) {
    this.#readOnly = readOnly;
    this.#file = join(dir, `${Date.now()}-${randomBytes(6).toString('hex')}.json`);
    this.#earlier = earlier;
  }

  /**
   * Assigns an id to every key: the one an earlier run left pending, or a new random one, and
   * records them all before any is offered. Without a writable state dir, retries within this
   * run still resume; re-runs start over. `readOnly` (a dry run) reads the earlier runs' ids and
   * writes nothing, now or at close.
   */
  static async assign(stateDir: string, keys: string[], readOnly = false): Promise<TransferIds> {
    const dir = join(stateDir, 'pending');
    const earlier: Array<{ file: string; keys: string[] }> = [];
    const known = new Map<string, string>();
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      if (!name.endsWith('.json')) continue;
      const entries = await readEntries(join(dir, name));
      earlier.push({ file: join(dir, name), keys: Object.keys(entries) });
      for (const [key, id] of Object.entries(entries)) known.set(key, id);
    }
    const ids = new TransferIds(dir, earlier, readOnly);
    // One call for all new ids: a call per id cost 13 ms of a 2,000-file run's start.
    const fresh = randomBytes(TRANSFER_ID_LEN * keys.length);
    keys.forEach((key, i) => {
      const id = known.get(key);
      const at = i * TRANSFER_ID_LEN;
      ids.#ids.set(key, id !== undefined ? Buffer.from(id, 'hex') : fresh.subarray(at, at + TRANSFER_ID_LEN));
    });
    if (readOnly) return ids;
    await mkdir(dir, { recursive: true, mode: 0o700 })
      .then(() => ids.#save())
      .catch(() => {});
    return ids;
  }

  idFor(key: string): Buffer {
    const id = this.#ids.get(key);
    if (id === undefined) throw new Error(`no transfer id assigned for ${key}`);
    return id;
  }

  /** The item is settled (confirmed, or refused for good): a later run sends it anew. */
  settled(key: string): void {
    this.#settled.add(key);
  }

  /** Keeps what is still pending, for the next run; drops what this run took over. */
  async close(): Promise<void> {
    if (this.#readOnly) return;
    try {
      if (this.#settled.size === this.#ids.size) await unlink(this.#file);
      else await this.#save();
      for (const { file, keys } of this.#earlier) {
        if (keys.every((key) => this.#ids.has(key))) await unlink(file).catch(() => {});
      }
    } catch {
      // The state dir is a convenience for resume; losing it never loses data.
    }
  }

  async #save(): Promise<void> {
    const entries: Entries = {};
    for (const [key, id] of this.#ids) if (!this.#settled.has(key)) entries[key] = id.toString('hex');
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
