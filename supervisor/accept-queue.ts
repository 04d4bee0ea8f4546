import { setTimeout as sleep } from 'node:timers/promises';
import { socketInodes } from './sys/proc.js';
import { establishedInodes } from './sys/proc-net.js';
import { acceptQueue } from './sys/socket.js';

const QUEUE_POLL_MS = 10;
// Each look reads the namespace's whole /proc/net/tcp: not every 10 ms.
const CONNECTIONS_POLL_MS = 50;

/**
 * Resolves when nothing waits in the accept queue of `fd` (an old generation's own listener, baton's copy), or
 * after `limit` ms: closing a listener resets the connections waiting in it.
 */
export async function queueEmptied(fd: number, limit: number, open: () => boolean = () => true): Promise<void> {
  const deadline = performance.now() + limit;
  // `open`: once the generation has exited baton has closed its copy, and the fd number may be reused.
  while (performance.now() < deadline && open() && acceptQueue(fd) > 0) await sleep(QUEUE_POLL_MS);
}

/**
 * Resolves when the process tree of `pid` holds no established TCP connection and nothing waits in the queue of
 * `fd` (its own listener, baton's copy), or after `limit` ms, or once `open` is false (it has exited).
 */
export async function connectionsClosed(pid: number, fd: number, limit: number, open: () => boolean): Promise<void> {
  const deadline = performance.now() + limit;
  const busy = () => acceptQueue(fd) > 0 || connectionsOf(pid, establishedInodes()) > 0;
  while (performance.now() < deadline && open() && busy()) await sleep(CONNECTIONS_POLL_MS);
}

/** How many established TCP connections (of `established`, this namespace's) the process tree of `pid` holds. */
export function connectionsOf(pid: number, established: Set<number>): number {
  return socketInodes(pid).filter((inode) => established.has(inode)).length;
}
