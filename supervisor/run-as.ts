import { resolveCommand } from './command.js';
import { usageError } from './errors.js';
import { groupList, type User } from './sys/user.js';

/** --user: the user, its supplementary groups, the setpriv that switches to them, and env(1) (see asUser). */
export type RunAs = User & { groups: number[]; setpriv: string; env: string };

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
 * What glibc ignores in a setuid program's environment (its unsecure-envvars.h; every LD_ and MALLOC_ one here):
 * setpriv runs as root until it drops to the user, and its ld.so and libc would take them from the release
 * (an --env-file): LD_PRELOAD would run the release's code as root, LD_DEBUG_OUTPUT write root's files.
 */
const UNSECURE_ENV = new Set([
  ...'GCONV_PATH GETCONF_DIR GLIBC_TUNABLES HOSTALIASES LOCALDOMAIN LOCPATH NIS_PATH NLSPATH'.split(' '),
  ...'RESOLV_HOST_CONF RES_OPTIONS TMPDIR TZDIR'.split(' '),
]);
const unsecure = (name: string) => name.startsWith('LD_') || name.startsWith('MALLOC_') || UNSECURE_ENV.has(name);

/**
 * The user --user names, with the groups initgroups(3) would give it (none for a uid without a name),
 * and the setpriv that sets them; refused without setpriv.
 */
export function runAs(user: User): RunAs {
  const groups = user.name ? groupList(user.name, user.gid) : [];
  const setpriv = need('setpriv', 'which gives the user its supplementary groups', 'util-linux');
  return { ...user, groups, setpriv, env: need('env', 'which sets what setpriv may not be given', 'coreutils') };
}

function need(command: string, which: string, from: string): string {
  try {
    return resolveCommand(command);
  } catch {
    throw usageError(`--user needs ${command}, ${which}`, `install ${from} (it has ${command}), or drop --user`);
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

type Env = Readonly<Record<string, string | undefined>>;

/**
 * `file args` with `env` as the user: through setpriv (Node's spawn leaves a process it gives a uid no
 * supplementary groups). setpriv gets `env` less UNSECURE_ENV; what that leaves out, env(1) sets once it runs as
 * the user (their values are on its command line until it execs `file`).
 */
export function asUser<E extends Env>(
  user: RunAs | undefined,
  file: string,
  args: string[],
  env: E,
): { file: string; args: string[]; env: E } {
  if (!user) return { file, args, env };
  const safe: Record<string, string | undefined> = {};
  const after: string[] = [];
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) continue;
    if (unsecure(k)) after.push(`${k}=${v}`);
    else safe[k] = v;
  }
  const command = after.length > 0 ? [user.env, '--', ...after, file, ...args] : [file, ...args];
  const groups = user.groups.length > 0 ? `--groups=${user.groups.join(',')}` : '--clear-groups';
  const ids = [`--reuid=${user.uid}`, `--regid=${user.gid}`, groups];
  return { file: user.setpriv, args: [...ids, '--', ...command], env: safe as E };
}
