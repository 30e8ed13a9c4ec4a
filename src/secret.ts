// Where the credentials come from. A shared secret (PROTOCOL.md §2.1): a file only its owner
// can read, or the ACKSHIP_SECRET environment variable; never a command-line argument, which
// `ps` shows to all. TLS material: PEM files.
import { readFile, stat } from 'node:fs/promises';
import { InputError, UsageError } from './errors.js';

/** A secret given as text or bytes, as the HMAC key; an empty one is refused. */
export function secretBytes(secret: string | Uint8Array): Buffer {
  const bytes = Buffer.from(secret);
  if (bytes.length === 0) throw new UsageError('the shared secret is empty');
  return bytes;
}

/** Reads `path`, refusing a file that anyone but its owner may read; one trailing newline is dropped. */
async function readSecretFile(path: string): Promise<Buffer> {
  let mode: number;
  let text: Buffer;
  try {
    mode = (await stat(path)).mode;
    text = await readFile(path);
  } catch (err) {
    throw new InputError(`cannot read the secret file ${path}: ${(err as Error).message}`);
  }
  if (mode & 0o077) {
    throw new UsageError(
      `refusing the secret file ${path}: others may read it (mode ${(mode & 0o777).toString(8)}); run chmod 600 ${path}`,
    );
  }
  const end = text.at(-1) === 0x0a ? (text.at(-2) === 0x0d ? -2 : -1) : text.length;
  return secretBytes(text.subarray(0, end));
}

/** The secret from `--secret-file`, else from ACKSHIP_SECRET, else none. */
export async function resolveSecret(
  file: string | undefined,
  env: NodeJS.ProcessEnv,
): Promise<Buffer | undefined> {
  if (file !== undefined) return readSecretFile(file);
  const fromEnv = env.ACKSHIP_SECRET;
  return fromEnv === undefined ? undefined : secretBytes(fromEnv);
}

/** A PEM file for TLS (a certificate, a key, a CA bundle). */
export async function readPem(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new InputError(`cannot read the TLS ${what} ${path}: ${(err as Error).message}`);
  }
}
