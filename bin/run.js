#!/usr/bin/env node
// Many fsyncs at once share the filesystem's journal commits, but libuv runs only 4 blocking
// calls at a time by default; set before anything uses its thread pool.
process.env.UV_THREADPOOL_SIZE ??= '64';
const { execute } = await import('@oclif/core');
await execute({ dir: import.meta.url });
