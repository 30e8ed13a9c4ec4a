// xxHash64 through xxhash-wasm, loaded once. Large inputs are hashed chunk by chunk: one-shot
// hashing of a large buffer is several times slower than streaming it. Up to a chunk, one-shot
// is the faster (a 1 KiB buffer: 0.3 us against 1.4 us for a streaming hasher's state).
import xxhash from 'xxhash-wasm';

export interface Hasher {
  update(input: Uint8Array): Hasher;
  digest(): bigint;
}

let api: Awaited<ReturnType<typeof xxhash>> | undefined;

/** Loads the WebAssembly module; call once before `createHasher`. */
export async function loadHasher(): Promise<void> {
  api ??= await xxhash();
}

/** A streaming xxHash64 (seed 0). `digest()` may be taken mid-stream and updating continued. */
export function createHasher(): Hasher {
  if (api === undefined) throw new Error('loadHasher() was not awaited');
  return api.create64();
}

/** The xxHash64 of one buffer of at most a CHUNK's size (1 MiB). */
export function xxh64(bytes: Uint8Array): bigint {
  if (api === undefined) throw new Error('loadHasher() was not awaited');
  return api.h64Raw(bytes, 0n);
}

const READ_CHUNK = 1024 * 1024;

/** What hashing a file needs of it: positional reads (a FileHandle, an FdFile). */
export interface PositionalReader {
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
}

/** Feeds bytes [0, length) of an open file into `hasher`. */
export async function hashFilePrefix(file: PositionalReader, length: number, hasher: Hasher): Promise<void> {
  const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, Math.max(length, 1)));
  let at = 0;
  while (at < length) {
    const { bytesRead } = await file.read(buf, 0, Math.min(buf.length, length - at), at);
    if (bytesRead === 0) throw new Error(`file ended at ${at} of ${length} bytes`);
    hasher.update(buf.subarray(0, bytesRead));
    at += bytesRead;
  }
}

export function hashHex(hash: bigint): string {
  return hash.toString(16).padStart(16, '0');
}
