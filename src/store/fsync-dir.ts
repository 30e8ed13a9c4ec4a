// fsync of a directory: what makes the entries created or renamed in it survive a power cut.
import { open } from 'node:fs/promises';

export async function fsyncDir(path: string): Promise<void> {
  const dir = await open(path, 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
