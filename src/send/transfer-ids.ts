// The sender's memory of transfer ids (PROTOCOL.md §7): an item not yet confirmed keeps its id
// across runs, so re-running a failed `send` resumes the receiver's partial, and a run whose
// confirmation was lost is answered with that confirmation instead of making a second copy.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { TRANSFER_ID_LEN } from '../protocol/constants.js';

/** Where the ids live: $ACKSHIP_STATE_DIR, else $XDG_STATE_HOME/ackship, else ~/.local/state/ackship. */
export function defaultStateDir(env: NodeJS.ProcessEnv): string {
  if (env.ACKSHIP_STATE_DIR) return env.ACKSHIP_STATE_DIR;
  return join(env.XDG_STATE_HOME || join(homedir(), '.local', 'state'), 'ackship');
}

export class TransferIds {
  readonly #dir: string;

  constructor(stateDir: string) {
    this.#dir = join(stateDir, 'pending');
  }

  /**
   * The id for an item identified by `key` (file identity, size, mtime, name): the one a
   * previous run left pending, or a new random one, recorded before it is ever offered.
   */
  async idFor(key: string): Promise<Buffer> {
    const path = this.#path(key);
    const stored = await readFile(path, 'utf8').catch(() => '');
    if (/^[0-9a-f]{32}$/.test(stored.trim())) return Buffer.from(stored.trim(), 'hex');
    const id = randomBytes(TRANSFER_ID_LEN);
    try {
      await mkdir(this.#dir, { recursive: true, mode: 0o700 });
      await writeFile(`${path}.tmp`, id.toString('hex'), { mode: 0o600 });
      await rename(`${path}.tmp`, path);
    } catch {
      // Without a writable state dir, retries within this run still resume; re-runs start over.
    }
    return id;
  }

  /** The item is settled (confirmed or refused for good): a later run sends it anew. */
  async forget(key: string): Promise<void> {
    await unlink(this.#path(key)).catch(() => {});
  }

  #path(key: string): string {
    return join(this.#dir, createHash('sha256').update(key).digest('hex'));
  }
}
