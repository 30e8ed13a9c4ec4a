// The stress workload's messages: each carries its id and a checksum, so a receiver counts
// exact, intact arrivals. Layout: id u32, payload length u32, payload, xxh64 of payload u64.
import { createHasher } from '../hash.js';

const HEAD_LEN = 8;
const TAIL_LEN = 8;

/** Message `id` of `size` bytes in all (at least 16), with a payload that differs per id. */
export function makeMessage(id: number, size: number): Buffer {
  const payloadLen = Math.max(0, size - HEAD_LEN - TAIL_LEN);
  const out = Buffer.alloc(HEAD_LEN + payloadLen + TAIL_LEN);
  out.writeUInt32BE(id, 0);
  out.writeUInt32BE(payloadLen, 4);
  for (let i = 0; i < payloadLen; i++) out[HEAD_LEN + i] = (id * 31 + i) & 0xff;
  const payload = out.subarray(HEAD_LEN, HEAD_LEN + payloadLen);
  out.writeBigUInt64BE(createHasher().update(payload).digest(), HEAD_LEN + payloadLen);
  return out;
}

/** The id of a whole, intact message; undefined for anything else (cut short, corrupt, padded). */
export function checkMessage(bytes: Buffer): number | undefined {
  if (bytes.length < HEAD_LEN + TAIL_LEN) return undefined;
  const payloadLen = bytes.readUInt32BE(4);
  if (bytes.length !== HEAD_LEN + payloadLen + TAIL_LEN) return undefined;
  const payload = bytes.subarray(HEAD_LEN, HEAD_LEN + payloadLen);
  if (createHasher().update(payload).digest() !== bytes.readBigUInt64BE(HEAD_LEN + payloadLen))
    return undefined;
  return bytes.readUInt32BE(0);
}
