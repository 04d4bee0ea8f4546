import { BatonError } from '../errors.js';
import { printable } from '../printable.js';

/** Prints an error as `error:` and `hint:` lines and sets the exit code: the CLI's only way out. */
export function fail(err: unknown): void {
  const e = err instanceof BatonError ? err : undefined;
  // A message may carry what a generation or --check printed: no raw control characters reach the terminal.
  const bug = () =>
    String((err as Error)?.stack ?? err)
      .split('\n')
      .map(printable)
      .join('\n');
  process.stderr.write(`error: ${e ? printable(e.message) : bug()}\n`);
  process.stderr.write(
    `hint: ${e ? printable(e.hint) : 'this is a bug in baton; please report it with the log above'}\n`,
  );
  process.exitCode = e ? e.exitCode : 1;
}
