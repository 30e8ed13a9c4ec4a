// The stress workload's messages: each carries its run, its id and a checksum, so a receiver
// counts exact, intact arrivals per run. Layout: run u32, id u32, payload length u32, payload,
// xxh64 of everything before it u64.
import { createHasher } from '../hash.js';

const HEAD_LEN = 12;
const TAIL_LEN = 8;
/** The smallest message: a header and a checksum. */
export const MIN_MESSAGE_LEN = HEAD_LEN + TAIL_LEN;

export interface MessageId {
  run: number;
  id: number;
}

/** Message `id` of run `run`, `size` bytes in all (at least MIN_MESSAGE_LEN), its payload differing per id. */
export function makeMessage(run: number, id: number, size: number): Buffer {
  const payloadLen = Math.max(0, size - HEAD_LEN - TAIL_LEN);
  const out = Buffer.alloc(HEAD_LEN + payloadLen + TAIL_LEN);
  out.writeUInt32BE(run, 0);
  out.writeUInt32BE(id, 4);
  out.writeUInt32BE(payloadLen, 8);
  for (let i = 0; i < payloadLen; i++) out[HEAD_LEN + i] = (id * 31 + i) & 0xff;
  const body = out.subarray(0, HEAD_LEN + payloadLen);
  out.writeBigUInt64BE(createHasher().update(body).digest(), HEAD_LEN + payloadLen);
  return out;
}

/** Run and id of a whole, intact message; undefined for anything else (cut short, corrupt, padded). */
export function checkMessage(bytes: Buffer): MessageId | undefined {
  if (bytes.length < HEAD_LEN + TAIL_LEN) return undefined;
  const payloadLen = bytes.readUInt32BE(8);
  if (bytes.length !== HEAD_LEN + payloadLen + TAIL_LEN) return undefined;
  const body = bytes.subarray(0, HEAD_LEN + payloadLen);
  if (createHasher().update(body).digest() !== bytes.readBigUInt64BE(HEAD_LEN + payloadLen)) return undefined;
  return { run: bytes.readUInt32BE(0), id: bytes.readUInt32BE(4) };
}
