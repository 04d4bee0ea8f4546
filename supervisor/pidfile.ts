import { readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { BatonError } from './errors.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function holder(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Writes our pid atomically (temp file + rename). A file naming a live process is refused;
 * a stale one is replaced, and `onStale` hears of it.
 */
export function writePidFile(path: string, onStale: (pid: number) => void): void {
  const old = holder(path);
  if (old !== undefined && old !== process.pid) {
    if (alive(old)) {
      throw new BatonError('ERR_BATON_RUNNING', `pid file ${path} names a running process (pid ${old})`, `stop it first (kill ${old}), or choose another --pid-file`, { pid: old });
    }
    onStale(old);
  }
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, `${process.pid}\n`, { mode: 0o644 });
    renameSync(tmp, path);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // never written
    }
    const e = err as NodeJS.ErrnoException;
    throw new BatonError('ERR_BATON_PID_FILE', `cannot write pid file ${path}: ${e.code ?? e.message}`, `make ${dirname(path)} writable for this user, or choose another --pid-file`);
  }
}

/** Removes the pid file if it is still ours. */
export function removePidFile(path: string): void {
  if (holder(path) !== process.pid) return;
  try {
    unlinkSync(path);
  } catch {
    // gone already
  }
}
