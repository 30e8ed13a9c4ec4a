// oclif's command_not_found hook: a mistyped command is a usage error (64) with a suggestion,
// not oclif's exit 2 (which the exit table does not have).
import type { Hook } from '@oclif/core';
import { ExitCode } from '../errors.js';
import { closest } from './suggest.js';

const hook: Hook.CommandNotFound = async function (options) {
  const known = options.config.commands.filter((c) => !c.hidden).map((c) => c.id);
  // With spaces between topics, oclif joins the arguments that follow into the id.
  const [word = ''] = options.id.split(':');
  const guess = closest(word, known);
  const hint = guess === undefined ? `commands: ${known.join(', ')}` : `did you mean "${guess}"?`;
  process.stderr.write(`ackship: unknown command "${word}"; ${hint} (see ackship --help)\n`);
  this.exit(ExitCode.Usage);
};

export default hook;
