/** Errors carry a stable code, a one-line hint and context; only the CLI turns them into exit codes. */
export type Context = Record<string, string | number | undefined>;

export class BatonError extends Error {
  readonly code: string;
  readonly hint: string;
  readonly context: Context;
  /** 2 for usage errors, 1 for runtime errors (the CLI's exit code). */
  readonly exitCode: 1 | 2;

  constructor(code: string, message: string, hint: string, context: Context = {}, exitCode: 1 | 2 = 1) {
    super(message);
    this.name = 'BatonError';
    this.code = code;
    this.hint = hint;
    this.context = context;
    this.exitCode = exitCode;
  }
}

export function usageError(message: string, hint: string, context: Context = {}): BatonError {
  return new BatonError('ERR_BATON_USAGE', message, hint, context, 2);
}

/** `what` belongs to a live process `pid`: stop it first, or `otherwise`. */
export function alreadyRunning(what: string, pid: number, otherwise?: string): BatonError {
  const hint = `stop it first (kill ${pid})${otherwise ? `, or ${otherwise}` : ''}`;
  return new BatonError('ERR_BATON_RUNNING', `${what} (pid ${pid})`, hint, { pid });
}

/** Shaped like Node's SystemError (code, errno, syscall) plus a hint. */
export class SysError extends BatonError {
  readonly errno: number;
  readonly syscall: string;

  constructor(syscall: string, code: string, errno: number, detail: string, hint: string, context: Context = {}) {
    super(code, `${syscall}: ${detail} (${code})`, hint, context, 1);
    this.name = 'SysError';
    this.errno = -errno;
    this.syscall = syscall;
  }
}
