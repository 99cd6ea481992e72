import { parseArgs, type ParseArgsConfig } from 'node:util';
import { firstLine, UsageError } from './usageError.js';

/** A command's flags, strictly: an unknown flag, a missing value or a positional is a UsageError. */
export function parseFlags<const O extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    throw new UsageError(firstLine(error));
  }
}

/** A whole number in min..max, or a UsageError naming `source` (the flag or variable) and the value. */
export function parseWholeNumber(source: string, raw: string, min: number, max: number, what = 'a whole number'): number {
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new UsageError(`${source}: expected ${what} from ${min} to ${max}, got "${raw}"`);
  }
  return Number(raw);
}
