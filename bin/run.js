#!/usr/bin/env -S node --initial-old-space-size=64
// V8 counts every ArrayBuffer allocated since the last full collection against the old
// generation's limit, which starts at a few MiB for a heap as small as ours. A receiver's socket
// reads (64 KiB each, garbage within milliseconds) crossed it every ~18 MiB: 56 full
// collections per GiB received, with none of the heap to free. Starting the limit at 64 MiB
// leaves them to the cheap young collections (1 GiB into tmpfs: 0 full collections, receiver
// user CPU 2.3-2.5 s -> 1.0-1.3 s; 32 MiB still made 40). Set at start-up: V8 reads it only
// when it builds the heap, so `node bin/run.js` runs without it, as do the tests. It costs
// every start ~0.02 s (0.264 -> 0.283 s for --version, means of 20): a V8 flag of our own makes
// node's cached code for its internals unusable. One GiB received pays for 60 starts.
// Many fsyncs at once share the filesystem's journal commits, but libuv runs only 4 blocking
// calls at a time by default. More threads than 16 cost CPU without more speed: every trip
// through the pool wakes a thread through its shared queue (5,000 x 1 KiB files here: receiver
// CPU 3.4 s with 16 threads, 4.0 s with 64, at the same speed). Set before anything uses it.
process.env.UV_THREADPOOL_SIZE ??= '16';
const { execute } = await import('@oclif/core');
await execute({ dir: import.meta.url });
