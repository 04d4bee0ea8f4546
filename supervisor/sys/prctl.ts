import { existsSync, readFileSync } from 'node:fs';
import { c, check } from './libc.js';

const PR_SET_PTRACER = 0x59616d61;
const PR_SET_CHILD_SUBREAPER = 36;
const YAMA = '/proc/sys/kernel/yama/ptrace_scope';

/** Yama's ptrace_scope, or undefined on a kernel without Yama. */
export function yamaScope(): number | undefined {
  return existsSync(YAMA) ? Number(readFileSync(YAMA, 'utf8').trim()) : undefined;
}

/** Lets `pid` (and only it) attach to this process under Yama scope 1; 0 clears it. */
export function setPtracer(pid: number): void {
  check(c.prctl(PR_SET_PTRACER, pid, 0, 0, 0), 'prctl', {}, { pid });
}

/** Orphaned descendants are reparented to this process instead of PID 1. */
export function setChildSubreaper(): void {
  check(c.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 'prctl', {});
}
