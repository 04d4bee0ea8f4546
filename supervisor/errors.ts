/** Errors carry a stable code, a one-line hint and context; only the CLI turns them into exit codes. */
import type { constants } from 'node:os';
import { type ErrorCode, errorCodes, isErrorCode } from './error-codes.js';

export type Context = Record<string, string | number | undefined>;

/** A SysError's code: the errno name (EPERM, ...), or E and the number when Node has no name for it. */
export type Errno = keyof typeof constants.errno | `E${number}`;

export class BatonError extends Error {
  readonly code: ErrorCode | Errno;
  readonly hint: string;
  readonly context: Context;
  /** The CLI's exit code: the catalogue's (error-codes.ts) for an ERR_BATON_* code, 1 for a SysError. */
  readonly exitCode: 1 | 2;

  constructor(code: ErrorCode | Errno, message: string, hint: string, context: Context = {}) {
    super(message);
    this.name = 'BatonError';
    this.code = code;
    this.hint = hint;
    this.context = context;
    this.exitCode = isErrorCode(code) ? errorCodes[code].exit : 1;
  }
}

export function usageError(message: string, hint: string, context: Context = {}): BatonError {
  return new BatonError('ERR_BATON_USAGE', message, hint, context);
}

/** `what` belongs to a live process `pid`: stop it first, or `otherwise`. */
export function alreadyRunning(what: string, pid: number, otherwise?: string): BatonError {
  const hint = `stop it first (kill ${pid})${otherwise ? `, or ${otherwise}` : ''}`;
  return new BatonError('ERR_BATON_RUNNING', `${what} (pid ${pid})`, hint, { pid });
}

/** Shaped like Node's SystemError (code, errno, syscall) plus a hint. */
export class SysError extends BatonError {
  declare readonly code: Errno;
  readonly errno: number;
  readonly syscall: string;
  private readonly detail: string;

  constructor(syscall: string, code: Errno, errno: number, detail: string, hint: string, context: Context = {}) {
    super(code, `${syscall}: ${detail} (${code})`, hint, context);
    this.name = 'SysError';
    this.errno = -errno;
    this.syscall = syscall;
    this.detail = detail;
  }

  /** The same error with a hint that knows more than the syscall's table. */
  withHint(hint: string): SysError {
    return new SysError(this.syscall, this.code, -this.errno, this.detail, hint, this.context);
  }
}
