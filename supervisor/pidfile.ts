import { readFileSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { alreadyRunning, BatonError } from './errors.js';
import { checkDirectory, writeFileAtomic } from './files.js';

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

const WHY: Record<string, (dir: string) => string> = {
  ENOSPC: (dir) => `free space on the file system of ${dir}, or choose another --pid-file`,
  EDQUOT: (dir) => `raise this user's disk quota on ${dir}, or choose another --pid-file`,
  EROFS: (dir) => `${dir} is on a read-only file system: choose another --pid-file`,
};

/**
 * Writes our pid atomically in a directory only root or baton's user can write. A file naming a
 * live process is refused; a stale one is replaced, and `onStale` hears of it.
 */
export function writePidFile(path: string, onStale: (pid: number) => void): void {
  checkDirectory(dirname(path), 'pid file');
  const old = holder(path);
  if (old !== undefined && old !== process.pid) {
    if (alive(old)) {
      throw alreadyRunning(`pid file ${path} names a running process`, old, 'choose another --pid-file');
    }
    onStale(old);
  }
  try {
    writeFileAtomic(path, `${process.pid}\n`, 0o644);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const dir = dirname(path);
    const hint = WHY[e.code ?? '']?.(dir) ?? `make ${dir} writable for this user, or choose another --pid-file`;
    throw new BatonError('ERR_BATON_PID_FILE', `cannot write pid file ${path}: ${e.code ?? e.message}`, hint);
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
