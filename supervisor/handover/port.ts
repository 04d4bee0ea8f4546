import { findSockets, poll } from '../grab-watch.js';
import { grabFds } from '../sys/pidfd.js';
import { listeningSockets } from '../sys/proc-net.js';
import { boundPort, createListener } from '../sys/socket.js';
import { closeFd } from '../sys/fd.js';
import type { Handover } from './index.js';

/** A free loopback port: bound to port 0, read back, released. */
function freePort(): number {
  const { fd } = createListener({ kind: 'tcp', family: 4, host: '127.0.0.1', port: 0, v6only: false }, 1, {});
  try {
    return boundPort(fd);
  } finally {
    closeFd(fd);
  }
}

/**
 * For unmodified servers under steering: each generation binds its own $PORT; baton finds that
 * listener in the child's fd table (matched against the LISTEN sockets of /proc/net/tcp and tcp6)
 * and pulls a copy with pidfd_getfd, the supervisor-to-child direction ptrace allows.
 * `$PORT` in the command's arguments is replaced, since no shell does it.
 */
export const port: Handover = {
  name: 'port',
  defaultReady: { kind: 'grab' },
  plan(command) {
    const p = String(freePort());
    const args = command.map((a) => a.replaceAll('${PORT}', p).replaceAll('$PORT', p));
    return { file: args[0]!, args: args.slice(1), env: { PORT: p, BATON_PORT: p }, stdio: ['ignore', 'inherit', 'inherit'], port: Number(p) };
  },
  async watch(pid, plan, _listeners, signal) {
    const where = await poll(() => {
      const wanted = listeningSockets()
        .filter((s) => s.port === plan.port)
        .map((s) => `socket:[${s.inode}]`);
      return wanted.length ? findSockets(pid, wanted).values().next().value : undefined;
    }, signal);
    return grabFds(where.pid, [where.fd]);
  },
  open() {},
  close() {},
};
