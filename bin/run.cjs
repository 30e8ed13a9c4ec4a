#!/usr/bin/env node
// CommonJS on purpose: node reads a CommonJS main file synchronously, where its loader reads an
// ES module main file through libuv's thread pool, which starts the pool, at its default 4
// threads, before the first line could set its size.
// Many fsyncs at once share the filesystem's journal commits, but libuv runs only 4 blocking
// calls at a time by default. More threads than 16 cost CPU without more speed: every trip
// through the pool wakes a thread through its shared queue (5,000 x 1 KiB files here: receiver
// CPU 3.4 s with 16 threads, 4.0 s with 64, at the same speed). Set before anything uses it.
process.env.UV_THREADPOOL_SIZE ??= '16';
// No node flags on the first line: any V8 flag of our own makes node's cached code for its
// internals unusable, which costs each start ~0.04 s. The receiver needs none: bundled
// (dist/cli/), it runs 2 full collections per GiB received (`--trace-gc`, 3 runs).
// The command's bundle loads here, from its code cache, before oclif would require (and
// compile) it: ~0.01 s of a one-file send (oclif-loader.cjs).
const { loadOclif, preloadCommand } = require('./oclif-loader.cjs');
const { oclif } = loadOclif();
preloadCommand(process.argv.slice(2));
oclif.execute({ dir: __dirname });
