import { BatonError } from '../errors.js';

/** Prints an error as `error:` and `hint:` lines and sets the exit code: the CLI's only way out. */
export function fail(err: unknown): void {
  const e = err instanceof BatonError ? err : undefined;
  process.stderr.write(`error: ${e ? e.message : String((err as Error)?.stack ?? err)}\n`);
  process.stderr.write(`hint: ${e ? e.hint : 'this is a bug in baton; please report it with the log above'}\n`);
  process.exitCode = e ? e.exitCode : 1;
}
