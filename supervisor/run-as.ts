import { resolveCommand } from './command.js';
import { usageError } from './errors.js';
import { groupList, type User } from './sys/user.js';

/** --user: the user, its supplementary groups, and the setpriv that switches to them. */
export type RunAs = User & { groups: number[]; setpriv: string };

/** Variables that describe baton's own environment and must not leak into a process it starts for the app. */
const PRIVATE_ENV = [
  'NOTIFY_SOCKET',
  'BATON_NOTIFY_SOCKET',
  'LISTEN_PID',
  'LISTEN_FDS',
  'LISTEN_FDNAMES',
  '_PID',
  '_FD',
  'BATON_LISTENERS',
  'BATON_GENERATION',
  'BATON_WORKER',
];

/** Under --user, what of the invoking session the user must not see either: its agents, mail, and baton's options. */
const SESSION_ENV = /^(SUDO_\w*|SSH_AUTH_SOCK|XDG_RUNTIME_DIR|MAIL|BATON_\w*)$/;

/**
 * The user --user names, with the groups initgroups(3) would give it (none for a uid without a name),
 * and the setpriv that sets them; refused without setpriv.
 */
export function runAs(user: User): RunAs {
  const groups = user.name ? groupList(user.name, user.gid) : [];
  try {
    return { ...user, groups, setpriv: resolveCommand('setpriv') };
  } catch {
    throw usageError(
      '--user needs setpriv, which gives the user its supplementary groups',
      'install util-linux (it has setpriv), or drop --user',
    );
  }
}

/** appEnv() for each user (`NONE`: no --user), made at the first launch: copying process.env costs 0.1 ms a spawn. */
const made = new WeakMap<object, Readonly<NodeJS.ProcessEnv>>();
const NONE = {};

/**
 * The environment of what baton starts for the app (a generation, --check, a probe) before its own
 * variables: baton's, less its private ones; under --user also less the invoking session's, with
 * HOME, USER, LOGNAME and SHELL of the user. baton's own environment is final once it starts (start-up
 * removes what it inherited for itself): nothing it starts for the app runs before that.
 */
export function appEnv(user: User | undefined): Readonly<NodeJS.ProcessEnv> {
  const key = user ?? NONE;
  let env = made.get(key);
  if (!env) {
    env = Object.freeze(envFor(user));
    made.set(key, env);
  }
  return env;
}

function envFor(user: User | undefined): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of PRIVATE_ENV) delete env[k];
  if (!user) return env;
  for (const k of Object.keys(env)) if (SESSION_ENV.test(k)) delete env[k];
  const name = user.name ?? String(user.uid);
  return { ...env, HOME: user.home, USER: name, LOGNAME: name, SHELL: user.shell };
}

/** `file args` as the user: through setpriv (Node's spawn leaves a process it gives a uid no supplementary groups). */
export function asUser(user: RunAs | undefined, file: string, args: string[]): { file: string; args: string[] } {
  if (!user) return { file, args };
  const groups = user.groups.length > 0 ? `--groups=${user.groups.join(',')}` : '--clear-groups';
  return { file: user.setpriv, args: [`--reuid=${user.uid}`, `--regid=${user.gid}`, groups, '--', file, ...args] };
}
