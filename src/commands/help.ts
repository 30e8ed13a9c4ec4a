import { Args, Command, loadHelpClass } from '@oclif/core';

/** `ackship help [COMMAND]`: the same help as `--help`, as users of git and npm expect. */
export default class Help extends Command {
  static override args = {
    command: Args.string({ description: 'The command to show the help of.', required: false }),
  };

  static override description = 'Show the help of ackship or of one of its commands.';

  static override strict = false;

  async run(): Promise<void> {
    const { argv } = await this.parse(Help);
    const HelpClass = await loadHelpClass(this.config);
    await new HelpClass(this.config).showHelp(argv as string[]);
  }
}
