// A process's signal dispositions as the kernel shows them (/proc/PID/status SigCgt, SigIgn), watched
// across a self-upgrade's execve: when baton's handler went, when Node's start reset SIG_IGN, when the
// new program caught the signal again.
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';

const mask = (status: string, field: string) =>
  BigInt(`0x${new RegExp(`^${field}:\\s*([0-9a-f]+)`, 'm').exec(status)?.[1] ?? '0'}`);

type Disposition = 'caught' | 'ignored' | 'default';

/** How `pid` takes each of `signals` now: caught (a handler), ignored (SIG_IGN) or default; undefined: gone. */
export function dispositions(pid: number, signals: NodeJS.Signals[]): Disposition[] | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const [caught, ignored] = [mask(status, 'SigCgt'), mask(status, 'SigIgn')];
  return signals.map((sig) => {
    const bit = 1n << BigInt(constants.signals[sig] - 1);
    return caught & bit ? 'caught' : ignored & bit ? 'ignored' : 'default';
  });
}

/** performance.now() of each change seen: the handler went, SIG_IGN reset (Node's start), caught again. */
export interface ExecWindow {
  /** baton set SIG_IGN, just before its execve (or, without that, the execve reset its handler). */
  lost: number;
  /** The new program's Node reset SIG_IGN to the default: from here a signal kills it. */
  reset?: number;
  /** The new program caught every one of the signals again. */
  caught: number;
}

const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * Polls `pid`'s dispositions of `signals` every ~0.2 ms, blocking this process, until the first of them
 * went from caught through not caught (an execve) and all are caught again (the new program's
 * handlers); calls `onCaught` at once then. Undefined if that did not happen within `timeoutMs` (or
 * the process is gone).
 */
export function watchExec(pid: number, signals: NodeJS.Signals[], timeoutMs: number, onCaught = () => {}) {
  const end = performance.now() + timeoutMs;
  let lost: number | undefined;
  let reset: number | undefined;
  while (performance.now() < end) {
    const d = dispositions(pid, signals);
    const now = performance.now();
    if (!d) return undefined;
    if (d[0] !== 'caught') lost ??= now;
    if (d[0] === 'default' && lost !== undefined) reset ??= now;
    if (lost !== undefined && d.every((x) => x === 'caught')) {
      onCaught();
      const window: ExecWindow = { lost, ...(reset === undefined ? {} : { reset }), caught: now };
      return window;
    }
    Atomics.wait(pause, 0, 0, 0.2);
  }
  return undefined;
}
