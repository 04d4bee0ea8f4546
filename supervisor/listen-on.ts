import type net from 'node:net';
import type { Logger } from './log.js';

/**
 * Starts `server` accepting on the listening socket `fd` (bound by baton, or handed over by a self-upgrade). From
 * then on an error is one failed accept (EMFILE, ENOBUFS): the server goes on listening, and `what` is warned of.
 * Unhandled, the second one would take baton down with it.
 */
export async function listenOn(server: net.Server, fd: number, log: Logger, what: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err: NodeJS.ErrnoException) => {
    log.event('warning', { message: `${what}: ${err.code ?? err.message}` });
  });
}
