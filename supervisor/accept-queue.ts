import { setTimeout as sleep } from 'node:timers/promises';
import { acceptQueue } from './sys/socket.js';

const QUEUE_POLL_MS = 10;

/**
 * Resolves when nothing waits in the accept queue of `fd` (an old generation's own listener, baton's copy), or
 * after `limit` ms: closing a listener resets the connections waiting in it.
 */
export async function queueEmptied(fd: number, limit: number, open: () => boolean = () => true): Promise<void> {
  const deadline = performance.now() + limit;
  // `open`: once the generation has exited baton has closed its copy, and the fd number may be reused.
  while (performance.now() < deadline && open() && acceptQueue(fd) > 0) await sleep(QUEUE_POLL_MS);
}
