import { closeFd } from '../sys/fd.js';
import { pullSocket } from '../sys/pidfd.js';
import { boundPort, createListener, isListening } from '../sys/socket.js';
import { poll } from './grab.js';
import type { Handover } from './handover.js';

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
 * For unmodified servers under steering: each generation binds its own $PORT; baton pulls a copy
 * of each new socket in the child's fd tables with pidfd_getfd (the supervisor-to-child direction
 * ptrace allows) until one is listening on that port. Asking the socket itself, rather than
 * matching inodes against /proc/net/tcp, stays cheap when the host holds many thousands of
 * connections (TIME_WAIT ones included), which make that file slow to read under load.
 * `$PORT` in the command's arguments is replaced, since no shell does it.
 */
export const port: Handover = {
  name: 'port',
  defaultReady: { kind: 'grab' },
  sharesListener: false,
  grabs: true,
  pulls: false,
  plan(command) {
    const p = String(freePort());
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the literal text ${PORT} in the command is replaced
    const args = command.map((a) => a.replaceAll('${PORT}', p).replaceAll('$PORT', p));
    const env = { PORT: p, BATON_PORT: p };
    return { file: args[0]!, args: args.slice(1), env, stdio: ['ignore', 'inherit', 'inherit'], port: Number(p) };
  },
  begin(pid, plan, _listeners, signal) {
    const asked = plan.port!;
    /** Listening sockets on other ports: never ours. */
    const examined = new Set<string>();
    const ours = (copy: number, socket: string) => {
      const listening = isListening(copy);
      if (listening && boundPort(copy) === asked) return true;
      // A socket not listening yet may be ours between bind() and listen(): look at it again.
      if (listening) examined.add(socket);
      return false;
    };
    // A socket that cannot be copied (closed meanwhile, or not ours to take) is looked at again next time.
    const pulled = poll(() => pullSocket(pid, ours, { among: (socket) => !examined.has(socket) }), signal);
    return { watch: pulled.then((fd) => ({ fd, port: asked })) };
  },
};
