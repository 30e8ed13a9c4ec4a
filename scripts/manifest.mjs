// Writes oclif.manifest.json, so that starting any command does not import every command
// module to learn the flags of all of them (measured: --version 0.13 s → 0.11 s here).
import { writeFileSync } from 'node:fs';
import { Config } from '@oclif/core';

const config = await Config.load(process.cwd());
const plugin = config.getPluginsList().find((p) => p.name === 'ackship');
if (plugin === undefined) throw new Error('the ackship plugin was not found');
writeFileSync('oclif.manifest.json', `${JSON.stringify(plugin.manifest)}\n`);
