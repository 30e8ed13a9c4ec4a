// The entry point of the bundled oclif (scripts/bundle.mjs → dist/cli/oclif.cjs): the framework
// and its dependencies in one file, which bin/run.cjs loads and each bundled command requires.
export * from '@oclif/core';
