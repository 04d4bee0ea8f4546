import { libc } from './libc.js';
import { ignoreSignals } from './signal.js';

/**
 * Signals the process group led by `pid`; false when the group is gone already. Never pid 0 or 1:
 * kill(-0) would signal baton's own group, kill(-1) every process baton may signal.
 */
export function signalGroup(pid: number, sig: NodeJS.Signals): boolean {
  if (pid <= 1) return false;
  try {
    process.kill(-pid, sig);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

/**
 * Replaces this process's program (execve); returns only if that failed. Node's profiler (node --cpu-prof) signals
 * its thread with SIGPROF many times a second, and one pending at the execve would kill the next program before
 * that one's profiler is set up: SIGPROF is ignored across it (which drops one pending), as it was if it failed.
 */
export function execve(file: string, argv: string[], env: string[]): void {
  const restore = ignoreSignals(['SIGPROF']);
  libc.execve(file, [...argv, null], [...env, null]);
  restore();
}
