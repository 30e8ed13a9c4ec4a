// The bytes a DATA or CHUNK frame carries. As sent, one buffer; as received, the views of the
// socket reads the frame's body arrived in, not a copy of them: a 1 MiB body arrives in about
// sixteen 64 KiB reads, and copying it into a fresh buffer was a 1 GiB copy per GiB received
// and half of the garbage the receiver's collector was busy with (22% of its main thread).
import { createHasher, xxh64 } from '../hash.js';

export type Payload = Buffer | readonly Buffer[];

export function payloadLength(payload: Payload): number {
  if (Buffer.isBuffer(payload)) return payload.length;
  let length = 0;
  for (const part of payload) length += part.length;
  return length;
}

export function payloadParts(payload: Payload): readonly Buffer[] {
  return Buffer.isBuffer(payload) ? [payload] : payload;
}

/** The xxHash64 of all of the payload's bytes. */
export function payloadHash(payload: Payload): bigint {
  if (Buffer.isBuffer(payload)) return xxh64(payload);
  const hasher = createHasher();
  for (const part of payload) hasher.update(part);
  return hasher.digest();
}
