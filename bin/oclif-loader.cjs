// Loads the bundled oclif (dist/cli/oclif.cjs), and the bundle of the command about to run, with
// the V8 code caches that the build wrote beside them (scripts/bundle.mjs), as require() would
// load them but without compiling them again: compiling oclif's 0.7 MB bundle and the functions
// a start runs took ~0.03 s of every start, a command's bundle ~0.01 s more. V8 checks a cache
// against the source, its own version and its flags, and compiles as usual when it does not
// match (cachedDataRejected). Each is registered in require's cache under the path oclif and
// the command bundles require, so they get this same instance.
const { existsSync, readFileSync } = require('node:fs');
const Module = require('node:module');
const { dirname, join } = require('node:path');
const { Script } = require('node:vm');

const CLI = join(__dirname, '..', 'dist', 'cli');
const BUNDLE = join(CLI, 'oclif.cjs');

/** Where the build writes the code cache of the bundle at `path`. */
function codeCacheOf(path) {
  return `${path}.cache`;
}

/** Runs the CommonJS bundle at `path` as require() would, with its code cache if there is one. */
function loadCached(path) {
  let cachedData;
  try {
    cachedData = readFileSync(codeCacheOf(path));
  } catch {
    // No cache (a build by tsc alone): compiled as usual.
  }
  const script = new Script(Module.wrap(readFileSync(path, 'utf8')), { filename: path, cachedData });
  const bundle = new Module(path, module);
  bundle.filename = path;
  require.cache[path] = bundle;
  script.runInThisContext()(bundle.exports, Module.createRequire(path), bundle, path, dirname(path));
  bundle.loaded = true;
  return { exports: bundle.exports, script };
}

function loadOclif() {
  const { exports, script } = loadCached(BUNDLE);
  return { oclif: exports, script };
}

/** The bundle of command `id`, if it has one (`--version` and flags name none). */
function commandBundle(id) {
  if (typeof id !== 'string' || !/^[a-z]+$/.test(id)) return undefined;
  const path = join(CLI, 'commands', `${id}.cjs`);
  return existsSync(path) ? path : undefined;
}

/** Loads the bundle of the command that `argv` names ahead of oclif, with its code cache. */
function preloadCommand(argv) {
  const path = commandBundle(argv[0]);
  return path === undefined ? undefined : loadCached(path);
}

module.exports = { loadOclif, preloadCommand, commandBundle, codeCacheOf, BUNDLE };
