import { check, libc } from './libc.js';

const PR_SET_DUMPABLE = 4;
const PR_SET_PTRACER = 0x59616d61;
const PR_SET_CHILD_SUBREAPER = 36;
const PR_CAP_AMBIENT = 47;
const PR_CAP_AMBIENT_RAISE = 2;
const PR_CAP_AMBIENT_CLEAR_ALL = 4;

/** Lets `pid` (and only it) attach to this process under Yama scope 1; 0 clears it. */
export function setPtracer(pid: number): void {
  check(libc.prctl(PR_SET_PTRACER, pid, 0, 0, 0), 'prctl', {}, { pid });
}

/**
 * No core dumps, /proc files owned by root, and no ptrace (so no pidfd_getfd) by any process without
 * CAP_SYS_PTRACE. execve makes a process dumpable again.
 */
export function setUndumpable(): void {
  check(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), 'prctl', {});
}

/** Orphaned descendants are reparented to this process instead of PID 1. */
export function setChildSubreaper(): void {
  check(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 'prctl', {});
}

/** Empties the ambient set: children no longer get this process's capabilities across execve. */
export function clearAmbient(): void {
  check(libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), 'prctl', {});
}

/** Puts `caps` back into the ambient set (each must still be permitted and inheritable). */
export function raiseAmbient(caps: number[]): void {
  for (const cap of caps) check(libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0), 'prctl', {}, { cap });
}
