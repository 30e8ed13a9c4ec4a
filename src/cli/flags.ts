// Flag kinds both commands use; the parsing itself lives in units.ts, where it is tested.
import { Flags } from '@oclif/core';
import { parseSeconds, parseSize } from './units.js';

export const secondsFlag = Flags.custom<number>({ parse: async (input) => parseSeconds(input) });
export const sizeFlag = Flags.custom<number>({ parse: async (input) => parseSize(input) });
