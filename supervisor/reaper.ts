import { ownChildren, spawnPending } from './children.js';
import { describeExit } from './exit-status.js';
import type { Logger } from './log.js';
import { setChildSubreaper } from './sys/prctl.js';
import { zombieChildren } from './sys/proc.js';
import { reapStatus } from './sys/wait.js';

const SWEEP_MS = 1000;

/**
 * As PID 1 or a subreaper, orphaned descendants become baton's children: reap them when they
 * exit. baton's own children are libuv's to reap (waitpid on them here would steal their exit).
 */
export function startReaper(log: Logger, subreaper: boolean): () => void {
  if (subreaper) setChildSubreaper();
  const sweep = () => {
    if (spawnPending()) return; // the next SIGCHLD or sweep takes what exited meanwhile
    for (const pid of zombieChildren()) {
      if (ownChildren.has(pid)) continue;
      const status = reapStatus(pid);
      if (status) log.event('reaped', { message: `orphan pid ${pid} ${describeExit(status)}` });
    }
  };
  const timer = setInterval(sweep, SWEEP_MS);
  timer.unref();
  process.on('SIGCHLD', sweep);
  return () => {
    clearInterval(timer);
    process.off('SIGCHLD', sweep);
  };
}
