import type { ExitStatus } from './exit-status.js';
import { reapStatus } from './sys/wait.js';

/**
 * A safety net under SIGCHLD, which is the way an exit is seen: one wake-up a second while a child is watched.
 * Node's signal handling coalesces signals, never loses the last one, and every watched pid is checked on each.
 */
const POLL_MS = 1000;
const watched = new Map<number, (s: ExitStatus) => void>();
let timer: NodeJS.Timeout | undefined;

function check(): void {
  for (const [pid, onExit] of watched) {
    const s = reapStatus(pid);
    if (!s) continue;
    watched.delete(pid);
    onExit(s);
  }
  if (watched.size === 0 && timer) {
    clearInterval(timer);
    process.off('SIGCHLD', check);
    timer = undefined;
  }
}

/**
 * Calls `onExit` once baton's child `pid` has exited, and reaps it (waitpid). For the children libuv does not know:
 * those baton spawns itself (sys/spawn.ts) and those a self-upgrade's previous program spawned.
 */
export function watchExit(pid: number, onExit: (s: ExitStatus) => void): void {
  watched.set(pid, onExit);
  if (!timer) {
    timer = setInterval(check, POLL_MS);
    process.on('SIGCHLD', check);
  }
  check();
}
