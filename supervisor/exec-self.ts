import { spawnPending } from './children.js';
import { BatonError } from './errors.js';
import { RESUME_ENV, type ResumeState } from './self-upgrade.js';
import { setCloexec } from './sys/fd.js';
import { execve } from './sys/process.js';

/**
 * Replaces baton's program in place (execve): same pid, so systemd's main pid and the children
 * stay. The fds the state names are made inheritable first; if execve fails (or one of them is closed) they are
 * closed-on-exec again and an error is thrown, and the caller goes on as before.
 */
export function execSelf(
  state: ResumeState,
  nodeFlags = process.execArgv,
  extraEnv: Record<string, string> = {},
): never {
  const fds = [...state.listeners.map((l) => l.fd), ...state.generations.flatMap((g) => g.own)];
  if (state.control) fds.push(state.control.fd);
  if (state.metrics) fds.push(state.metrics.fd);
  if (state.oomFd !== undefined) fds.push(state.oomFd);
  fds.push(...(state.clients ?? []), ...(state.canary?.clients ?? []), ...(state.sockets ?? []));
  return execNode(nodeFlags, { ...extraEnv, [RESUME_ENV]: JSON.stringify(state) }, fds);
}

/**
 * execve of this node and script with `nodeFlags`, baton's arguments and its environment with `extraEnv`: `fds` and
 * stdio are inherited. Returns only by throwing, the fds closed-on-exec again.
 */
export function execNode(nodeFlags: string[], extraEnv: Record<string, string>, fds: number[] = []): never {
  // The fds handed on are open across exec from here: a child cloned meanwhile on a worker thread would keep them.
  if (spawnPending()) throw new Error('an execve of baton while a spawn is under way would hand its child baton fds');
  const inheritable: number[] = [];
  try {
    // One closed meanwhile (a client that went away) throws here: no execve, and the others are put back.
    for (const fd of fds) {
      setCloexec(fd, false);
      inheritable.push(fd);
    }
    // libuv marks stdio close-on-exec when it wraps a pipe; the next program needs them too.
    for (const fd of [0, 1, 2]) {
      try {
        setCloexec(fd, false);
      } catch {
        // not open
      }
    }
    // `--`: Node 20 would take baton's own --env-file for its own (see cli.ts).
    const argv = [process.execPath, ...nodeFlags, '--', ...process.argv.slice(1)];
    const env = Object.entries({ ...process.env, ...extraEnv }).map(([k, v]) => `${k}=${v}`);
    execve(process.execPath, argv, env);
  } finally {
    for (const fd of inheritable) setCloexec(fd, true);
  }
  throw new BatonError(
    'ERR_BATON_EXEC',
    `execve ${process.execPath} failed`,
    'check that the node binary and baton are still in place',
  );
}
