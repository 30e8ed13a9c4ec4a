// The entry point of the bundled CLI (scripts/bundle.mjs): bin/run.cjs imports oclif from here,
// so that starting a command reads one file for the framework instead of its 474 modules.
export { execute } from '@oclif/core';
