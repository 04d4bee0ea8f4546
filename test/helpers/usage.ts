import type { ExecutionContext } from 'ava';
import type { ErrorCode } from '../../supervisor/error-codes.js';
import { BatonError } from '../../supervisor/errors.js';

/** `f` throws a BatonError with exactly this message and hint; a usage error (exit 2) unless `code` says otherwise. */
export function refused(
  t: ExecutionContext,
  f: () => unknown,
  message: string,
  hint: string,
  code: ErrorCode = 'ERR_BATON_USAGE',
): void {
  const err = t.throws(f, { instanceOf: BatonError });
  if (!err) return;
  t.is(err.message, message);
  t.is(err.hint, hint);
  t.is(err.code, code);
  t.is(err.exitCode, code === 'ERR_BATON_USAGE' ? 2 : 1);
}
