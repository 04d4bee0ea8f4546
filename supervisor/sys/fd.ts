import { readdirSync } from 'node:fs';
import type { SysError } from '../errors.js';
import { check, libc } from './libc.js';

const F_GETFL = 3;
const F_SETFL = 4;
const O_NONBLOCK = 0o4000;

export function closeFd(fd: number): void {
  check(libc.close(fd), 'close', {}, { fd });
}

export function setNonblocking(fd: number): void {
  const flags = check(libc.fcntl(fd, F_GETFL), 'fcntl', {}, { fd });
  check(libc.fcntl(fd, F_SETFL, 'int', flags | O_NONBLOCK), 'fcntl', {}, { fd });
}

const F_GETFD = 1;
const F_SETFD = 2;
const FD_CLOEXEC = 1;

export function setCloexec(fd: number, on: boolean): void {
  const flags = check(libc.fcntl(fd, F_GETFD), 'fcntl', {}, { fd });
  check(libc.fcntl(fd, F_SETFD, 'int', on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC), 'fcntl', {}, { fd });
}

const F_DUPFD_CLOEXEC = 1030;

/** A close-on-exec copy of `fd` (3 or above). */
export function dupCloexec(fd: number): number {
  return check(libc.fcntl(fd, F_DUPFD_CLOEXEC, 'int', 3), 'fcntl', {}, { fd });
}

/**
 * Marks every fd from 3 up close-on-exec: what baton's launcher left open reaches no process baton
 * starts. A process gets only what baton hands it (stdio, listeners); an execve of baton itself
 * clears the flag on what it passes on.
 */
export function closeOnExecAll(): void {
  for (const name of readdirSync('/proc/self/fd')) {
    const fd = Number(name);
    if (fd < 3) continue;
    try {
      setCloexec(fd, true);
    } catch (err) {
      // the fd readdir listed its own directory with, closed by now
      if ((err as SysError).code !== 'EBADF') throw err;
    }
  }
}
