import type { Argv } from 'yargs';
import { type BatonError, usageError } from '../errors.js';

/** yargs' message as one error line; its "Invalid values" is several lines. */
function yargsError(msg: string, hint: string): BatonError {
  const choice = /Argument: ([\w-]+), Given: (.*), Choices: (.*)/.exec(msg);
  if (choice) return usageError(`bad --${choice[1]} ${choice[2]}`, `use one of ${choice[3]}`);
  const bare = /^Not enough arguments following: ([\w-]+)$/.exec(msg);
  if (bare) return usageError(`--${bare[1]} needs a value`, hint);
  return usageError(msg.replace(/\s*\n\s*/g, ' ').trim(), hint);
}

/**
 * Every command's parser: unknown options refused, and every parse failure a usage error with
 * `hint` (yargs' own YError too, e.g. an option without its value), never an exit of yargs' own.
 */
export function strictParser<T>(y: Argv<T>, hint: string): Argv<T> {
  return y
    .strictOptions()
    .exitProcess(false)
    .fail((msg, err) => {
      if (err && err.name !== 'YError') throw err;
      throw yargsError(msg ?? err!.message, hint);
    });
}
