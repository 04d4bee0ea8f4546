import { check, libc } from './libc.js';

const PR_SET_PTRACER = 0x59616d61;
const PR_SET_CHILD_SUBREAPER = 36;

/** Lets `pid` (and only it) attach to this process under Yama scope 1; 0 clears it. */
export function setPtracer(pid: number): void {
  check(libc.prctl(PR_SET_PTRACER, pid, 0, 0, 0), 'prctl', {}, { pid });
}

/** Orphaned descendants are reparented to this process instead of PID 1. */
export function setChildSubreaper(): void {
  check(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 'prctl', {});
}
