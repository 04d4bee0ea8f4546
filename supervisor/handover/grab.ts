import { findSockets, socketOf } from '../sys/proc.js';

const POLL_MS = 5;

/** Polls `probe` until it returns a value; never settles once `signal` is aborted. */
export function poll<T>(probe: () => T | undefined, signal: AbortSignal): Promise<T> {
  return new Promise((resolve) => {
    const check = () => {
      if (signal.aborted) return;
      const v = probe();
      if (v !== undefined) resolve(v);
      else setTimeout(check, POLL_MS);
    };
    check();
  });
}

/** Resolves when the generation rooted at `pid` holds every listener (seen in its fd tables). */
export function watchGrab(pid: number, listenerFds: number[], signal: AbortSignal): Promise<void> {
  const wanted = listenerFds.map(socketOf);
  // The root's fd table at every poll, its descendants' (a wrapper's server) at every 4th: the walk reads each of
  // their threads' children files, most of the watch's CPU while a Node server starts.
  let polls = 0;
  const holdsAll = () => (findSockets(pid, wanted, polls++ % 4 === 0).size === wanted.length ? true : undefined);
  return poll(holdsAll, signal).then(() => undefined);
}
