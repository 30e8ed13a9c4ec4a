// Loads the bundled oclif (dist/cli/oclif.cjs) with the V8 code cache that the build wrote
// beside it (scripts/bundle.mjs), as require() would load it but without compiling it again:
// compiling the 0.7 MB bundle and the functions a start runs took ~0.03 s of every start.
// V8 checks the cache against the source, its own version and its flags, and compiles as
// usual when it does not match (cachedDataRejected). Registered in require's cache, so the
// bundled commands that require it get this same instance.
const { readFileSync } = require('node:fs');
const Module = require('node:module');
const { dirname, join } = require('node:path');
const { Script } = require('node:vm');

const BUNDLE = join(__dirname, '..', 'dist', 'cli', 'oclif.cjs');
const CODE_CACHE = `${BUNDLE}.cache`;

function loadOclif() {
  let cachedData;
  try {
    cachedData = readFileSync(CODE_CACHE);
  } catch {
    // No cache (a build by tsc alone): compiled as usual.
  }
  const script = new Script(Module.wrap(readFileSync(BUNDLE, 'utf8')), { filename: BUNDLE, cachedData });
  const bundle = new Module(BUNDLE, module);
  bundle.filename = BUNDLE;
  require.cache[BUNDLE] = bundle;
  script.runInThisContext()(bundle.exports, Module.createRequire(BUNDLE), bundle, BUNDLE, dirname(BUNDLE));
  bundle.loaded = true;
  return { oclif: bundle.exports, script };
}

module.exports = { loadOclif, CODE_CACHE };
