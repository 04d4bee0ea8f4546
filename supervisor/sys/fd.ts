import { readdirSync } from 'node:fs';
import type { SysError } from '../errors.js';
import { check, libc } from './libc.js';

const F_GETFL = 3;
const F_SETFL = 4;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;

export function closeFd(fd: number): void {
  check(libc.close(fd), 'close', {}, { fd });
}

export function setNonblocking(fd: number, on = true): void {
  const flags = check(libc.fcntl(fd, F_GETFL), 'fcntl', {}, { fd });
  check(libc.fcntl(fd, F_SETFL, 'int', on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK), 'fcntl', {}, { fd });
}

const F_GETFD = 1;
const F_SETFD = 2;
const FD_CLOEXEC = 1;

export function setCloexec(fd: number, on: boolean): void {
  const flags = check(libc.fcntl(fd, F_GETFD), 'fcntl', {}, { fd });
  check(libc.fcntl(fd, F_SETFD, 'int', on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC), 'fcntl', {}, { fd });
}

/** A pipe, both ends close-on-exec: [read, write]. */
export function pipe(): [number, number] {
  const fds = Buffer.alloc(8);
  check(libc.pipe2(fds, O_CLOEXEC), 'pipe2');
  return [fds.readInt32LE(0), fds.readInt32LE(4)];
}

const F_DUPFD_CLOEXEC = 1030;

/** A close-on-exec copy of `fd` (`lowest` or above). */
export function dupCloexec(fd: number, lowest = 3): number {
  return check(libc.fcntl(fd, F_DUPFD_CLOEXEC, 'int', lowest), 'fcntl', {}, { fd });
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
