// What a v4 message's key, name and meta may hold (PROTOCOL.md §4.12), checked the same way by
// the client before it sends and by the receiver before it hands the message on, and the id a
// key stands for on the wire and in the receiver's dedup record.
import { hash } from 'node:crypto';
import { MAX_KEY_LEN, MAX_NAME_LEN, TRANSFER_ID_LEN } from './constants.js';
import { hasControl } from './names.js';

/** Meta pairs one message may carry. */
export const MAX_META_PAIRS = 64;
/** Meta keys are short words: they become environment variable names (`recv --exec`). */
const META_KEY = /^[A-Za-z0-9_.-]{1,64}$/;

export interface MessageFields {
  key: string;
  name: string;
  meta: Array<[string, string]>;
}

/** §4.12: the message's id is the first 16 bytes of SHA-256("ackship-message-id", 0, key). */
export function messageId(key: string): Buffer {
  // One-shot: a third of the cost of createHash().update().update().digest() for short keys.
  return hash('sha256', `ackship-message-id\0${key}`, 'buffer').subarray(0, TRANSFER_ID_LEN);
}

/** Why the fields cannot be carried to an application, or undefined when they can. */
export function messageFieldsProblem({ key, name, meta }: MessageFields): string | undefined {
  const keyBytes = Buffer.byteLength(key);
  if (keyBytes === 0 || keyBytes > MAX_KEY_LEN)
    return `the id must be 1 to ${MAX_KEY_LEN} bytes, not ${keyBytes}`;
  if (hasControl(key)) return 'the id contains a control character';
  if (Buffer.byteLength(name) > MAX_NAME_LEN) return `the name is longer than ${MAX_NAME_LEN} bytes`;
  if (hasControl(name)) return 'the name contains a control character';
  if (meta.length > MAX_META_PAIRS) return `${meta.length} meta pairs, more than ${MAX_META_PAIRS}`;
  const seen = new Set<string>();
  for (const [k, v] of meta) {
    if (!META_KEY.test(k)) return `meta key ${JSON.stringify(k)} is not 1 to 64 of A-Z a-z 0-9 _ . -`;
    if (seen.has(k)) return `meta key ${k} appears twice`;
    seen.add(k);
    if (v.includes('\0')) return `meta value of ${k} contains a NUL`;
  }
  return undefined;
}
