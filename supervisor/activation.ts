import { formatAddress } from './address.js';
import type { ListenSpec } from './listener.js';
import { closeFd, setCloexec, setNonblocking } from './sys/fd.js';
import { socketAddress } from './sys/socket.js';

const FIRST_FD = 3;

/**
 * Listeners handed to baton itself by socket activation (a systemd .socket unit, or
 * systemd-socket-activate): LISTEN_FDS fds from 3, if LISTEN_PID is baton's pid. Each --listen
 * takes the inherited fd with its LISTEN_FDNAMES name or, failing that, its address; fds that no
 * --listen wants are closed (and reported).
 */
export function adoptActivated(specs: ListenSpec[], onUnused: (what: string) => void): Map<ListenSpec, number> {
  const env = process.env;
  const adopted = new Map<ListenSpec, number>();
  if (!env.LISTEN_FDS || Number(env.LISTEN_PID) !== process.pid) return adopted;
  const names = (env.LISTEN_FDNAMES ?? '').split(':');
  const fds = Array.from({ length: Number(env.LISTEN_FDS) }, (_, i) => FIRST_FD + i);
  for (const k of ['LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES']) delete env[k];
  for (const [i, fd] of fds.entries()) {
    setCloexec(fd, true);
    const address = socketAddress(fd);
    const text = address ? formatAddress(address) : '?';
    const spec =
      specs.find((s) => !adopted.has(s) && s.name === names[i]) ??
      specs.find((s) => !adopted.has(s) && formatAddress(s.address) === text);
    if (!spec) {
      onUnused(`fd ${fd} (${names[i] || 'unnamed'}, ${text})`);
      closeFd(fd);
      continue;
    }
    setNonblocking(fd);
    adopted.set(spec, fd);
  }
  return adopted;
}
