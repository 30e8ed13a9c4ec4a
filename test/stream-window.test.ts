// The sender's stream window checks where a receiver resumes: at a CHUNK boundary it still
// holds, with the hash of exactly the bytes it sent before it. A receiver whose copy was
// damaged (a hole of zeros after a power cut) is caught at ACCEPT, not at the TRAILER after
// the whole rest of the stream was sent.
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { ProtocolError } from '../src/errors.js';
import { createHasher, loadHasher } from '../src/hash.js';
import { StreamWindow } from '../src/send/stream-window.js';

await loadHasher();

const MiB = 1024 * 1024;

test('a resume must be at a boundary of what was sent, with that prefix hash', async () => {
  // One piece of 2.5 MiB from the input: held as CHUNK-sized parts, each end a boundary.
  const input = Buffer.alloc(2.5 * MiB, 7);
  input.fill(9, MiB);
  const window = new StreamWindow(Readable.from([input]), 'stdin', 16 * MiB);
  let at = 0;
  for (let chunk = await window.at(at); chunk !== undefined; chunk = await window.at(at)) {
    assert.ok(chunk.length <= MiB);
    at += chunk.length;
  }
  const prefix = (n: number) => createHasher().update(input.subarray(0, n)).digest();
  assert.throws(() => window.resumeAt(MiB, prefix(MiB) ^ 1n), ProtocolError, 'a damaged prefix is refused');
  assert.throws(() => window.resumeAt(MiB + 1, prefix(MiB + 1)), /no CHUNK it was sent ended/);
  window.resumeAt(MiB, prefix(MiB));
  window.resumeAt(2 * MiB, prefix(2 * MiB));
  assert.throws(() => window.resumeAt(MiB, prefix(MiB)), /acknowledged/, 'released bytes cannot be resumed');
});
