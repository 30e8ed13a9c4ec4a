// Flag kinds both commands use; the parsing itself lives in units.ts, where it is tested. Their
// defaults are shown in --help as a user would type them (16MiB, 7d), not as 16777216 or 604800.
import { Flags } from '@oclif/core';
import { formatDuration, formatSize, parseRate, parseSeconds, parseSize } from './units.js';

export const secondsFlag = Flags.custom<number>({
  parse: async (input) => parseSeconds(input),
  defaultHelp: async ({ options }) =>
    typeof options.default === 'number' ? formatDuration(options.default) : undefined,
});

export const sizeFlag = Flags.custom<number>({
  parse: async (input) => parseSize(input),
  defaultHelp: async ({ options }) =>
    typeof options.default === 'number' ? formatSize(options.default) : undefined,
});

export const rateFlag = Flags.custom<number>({ parse: async (input) => parseRate(input) });
