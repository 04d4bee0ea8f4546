import { formatAddress } from './address.js';
import type { ListenSpec } from './listener.js';
import { closeFd, setCloexec, setNonblocking } from './sys/fd.js';
import { openFiles } from './sys/limits.js';
import { socketAddress } from './sys/socket.js';

const FIRST_FD = 3;

/**
 * The fds socket activation handed to baton (LISTEN_FDS from 3, if LISTEN_PID is baton's pid); none without, or for
 * a count no fd table could hold (as sd_listen_fds, which refuses what is not a number).
 */
export function activatedFds(): number[] {
  const env = process.env;
  const count = Number(env.LISTEN_FDS);
  if (Number(env.LISTEN_PID) !== process.pid || !Number.isInteger(count) || count < 1) return [];
  if (count > openFiles().limit - FIRST_FD) return [];
  return Array.from({ length: count }, (_, i) => FIRST_FD + i);
}

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
  const fds = activatedFds();
  const names = (env.LISTEN_FDNAMES ?? '').split(':');
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
