// Bundles the CLI into dist/cli/ as CommonJS: oclif and its dependencies in oclif.cjs, each
// command in commands/NAME.cjs requiring that one file, built from the same compiled modules
// as the library (dist/src/), so the commands still run the library's engine. Node loads the
// 474 CommonJS modules of @oclif/core one by one, each a resolution, a read and a compile;
// commands stay separate so that --version and --help load no command's code. CommonJS, not
// ES modules: a start then needs none of node's ES module loader, and bin/oclif-loader.cjs can
// load oclif.cjs with the V8 code cache written here, from a run of --version.
// Measured here (medians of 15): `ackship --version` 0.36 s unbundled, 0.25 s bundled as ES
// modules, 0.22 s as CommonJS, 0.20 s with the code cache (node -e 0: 0.12-0.14 s).
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { build } from 'esbuild';

const common = {
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  outdir: 'dist/cli',
  outExtension: { '.js': '.cjs' },
  // oclif requires these only to run a CLI's TypeScript sources in development, which ours
  // never does; they are not installed.
  external: ['typescript', 'ts-node'],
  logLevel: 'warning',
};

/** Bundles that require the one oclif.cjs (`prefix` is its path from theirs) rather than a copy. */
function sharingOclif(prefix) {
  return {
    name: 'share-oclif',
    setup(b) {
      b.onResolve({ filter: /^@oclif\/core$/ }, () => ({ path: `${prefix}oclif.cjs`, external: true }));
    },
  };
}

// oclif sorts a plugin's commands with localeCompare on every start, and the first
// localeCompare builds ICU's collator: 15 ms of each `--version` (0.197 -> 0.182 s, medians of
// 21). Our command ids are lowercase ASCII, for which comparing code units gives the same order;
// the order only decides how help lists commands.
const ORDINAL_COMMAND_SORT = {
  name: 'ordinal-command-sort',
  setup(b) {
    b.onLoad({ filter: /@oclif[\\/]core[\\/]lib[\\/]config[\\/]plugin\.js$/ }, ({ path }) => {
      const source = readFileSync(path, 'utf8');
      const sort = '.sort((a, b) => a.id.localeCompare(b.id))';
      if (!source.includes(sort)) throw new Error(`${path}: oclif's command sort changed; review the patch`);
      const ordinal = '.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))';
      return { contents: source.replace(sort, ordinal), loader: 'js' };
    });
  },
};

await build({ ...common, entryPoints: { oclif: 'dist/src/cli/oclif.js' }, plugins: [ORDINAL_COMMAND_SORT] });
const commands = readdirSync('dist/src/commands').filter((f) => f.endsWith('.js'));
await build({
  ...common,
  entryPoints: Object.fromEntries(
    commands.map((f) => [`commands/${f.slice(0, -3)}`, `dist/src/commands/${f}`]),
  ),
  plugins: [sharingOclif('../')],
});
await build({
  ...common,
  entryPoints: { 'not-found-hook': 'dist/src/cli/not-found-hook.js' },
  plugins: [sharingOclif('./')],
});

// The code caches: made by the node that builds, used by the same node (V8 rejects them
// otherwise). oclif's after a run of --version, so that the functions a start runs are in it;
// each command's once its bundle has loaded.
const made = spawnSync(
  process.execPath,
  [
    '-e',
    `const { writeFileSync } = require('node:fs');
     const { loadOclif, preloadCommand, commandBundle, codeCacheOf, BUNDLE } = require('./bin/oclif-loader.cjs');
     const { oclif, script } = loadOclif();
     for (const id of ${JSON.stringify(commands.map((f) => f.slice(0, -3)))}) {
       const { script: loaded } = preloadCommand([id]);
       writeFileSync(codeCacheOf(commandBundle(id)), loaded.createCachedData());
     }
     oclif.execute({ dir: process.cwd(), args: ['--version'] })
       .then(() => writeFileSync(codeCacheOf(BUNDLE), script.createCachedData()));`,
  ],
  { stdio: ['ignore', 'ignore', 'inherit'] },
);
if (made.status !== 0) throw new Error(`making the code caches failed (${made.status})`);
