import { read } from 'node:fs';
import { closeFd, dupCloexec, pipe, setNonblocking } from './fd.js';
import { errnoIs, libc, library, sysError } from './libc.js';

const fn = {
  spawn: library.func('int posix_spawn(_Out_ int *, const char *, void *, void *, const char **, const char **)'),
  actionsInit: library.func('int posix_spawn_file_actions_init(void *)'),
  actionsDestroy: library.func('int posix_spawn_file_actions_destroy(void *)'),
  open: library.func('int posix_spawn_file_actions_addopen(void *, int, const char *, int, int)'),
  dup2: library.func('int posix_spawn_file_actions_adddup2(void *, int, int)'),
  chdir: library.func('int posix_spawn_file_actions_addchdir_np(void *, const char *)'),
  attrInit: library.func('int posix_spawnattr_init(void *)'),
  attrDestroy: library.func('int posix_spawnattr_destroy(void *)'),
  setflags: library.func('int posix_spawnattr_setflags(void *, short)'),
  setsigmask: library.func('int posix_spawnattr_setsigmask(void *, const void *)'),
  setsigdefault: library.func('int posix_spawnattr_setsigdefault(void *, const void *)'),
  sigemptyset: library.func('int sigemptyset(void *)'),
};

// glibc's <spawn.h>: signal dispositions to default, the signal mask set, a new session (so a process group).
const SETSIGDEF = 0x04;
const SETSIGMASK = 0x08;
const SETSID = 0x80;
const O_RDWR = 2;
/** Larger than glibc's posix_spawn_file_actions_t (80 bytes), posix_spawnattr_t (336) and sigset_t (128). */
const OPAQUE = 512;

/** A child's fd: /dev/null (`ignore`), baton's fd of the same number (`inherit`), or the baton fd given. */
export type Stdio = 'ignore' | 'inherit' | number;

export interface SpawnOptions {
  cwd: string;
  env: string[];
  /** The child's fds from 0 up. */
  stdio: readonly Stdio[];
}

/** posix_spawn and its helpers return the errno: `spawn FILE: No such file or directory (ENOENT)`. */
function ok(ret: number, file: string, hint: string): void {
  if (ret !== 0) throw sysError(ret, `spawn ${file}`, { default: hint });
}

/** posix_spawn's file actions and attributes for `options`, and the fds moved for them: freed by release(). */
interface Prepared {
  actions: Buffer;
  attr: Buffer;
  release(): void;
}

function prepare(file: string, argv: readonly string[], options: SpawnOptions): Prepared {
  for (const s of [file, ...argv, ...options.env, options.cwd]) {
    if (s.includes('\0')) throw new TypeError(`spawn ${file}: an argument or variable holds a NUL byte`);
  }
  // Each child fd's source: undefined for /dev/null, baton's fd of the same number for `inherit`.
  const from = options.stdio.map((s, child) => (s === 'ignore' ? undefined : typeof s === 'number' ? s : child));
  // An fd handed on must not be overwritten by the dup2 of an earlier one: those below from.length move up first.
  const moved = from.map((fd, child) =>
    fd !== undefined && fd !== child && fd < from.length ? dupCloexec(fd, from.length) : fd,
  );
  const actions = Buffer.alloc(OPAQUE);
  const attr = Buffer.alloc(OPAQUE);
  fn.actionsInit(actions);
  fn.attrInit(attr);
  const release = () => {
    fn.actionsDestroy(actions);
    fn.attrDestroy(attr);
    for (const [child, fd] of moved.entries()) if (fd !== from[child]) closeFd(fd!);
  };
  try {
    for (const [child, fd] of moved.entries()) {
      if (fd === undefined) ok(fn.open(actions, child, '/dev/null', O_RDWR, 0), file, 'see man 3 posix_spawn');
      // A dup2 onto itself clears close-on-exec (glibc 2.29 on), which Node sets even on its stdio.
      else ok(fn.dup2(actions, fd, child), file, `fd ${fd} is not open`);
      // Shared with baton (the same open file description): blocking, as a child expects of its stdio, and as
      // libuv's spawn leaves it. baton's log never writes to it directly (sys/log-sink.ts).
      if (fd === child && child <= 2) setNonblocking(child, false);
    }
    ok(fn.chdir(actions, options.cwd), file, 'see man 3 posix_spawn');
    // Every signal 1-64, also the two sigfillset() leaves out as glibc's own: else the child would set them to
    // SIG_IGN, which an execve keeps.
    const all = Buffer.alloc(OPAQUE);
    all.fill(0xff, 0, 8);
    const none = Buffer.alloc(OPAQUE);
    fn.sigemptyset(none);
    fn.setsigdefault(attr, all);
    fn.setsigmask(attr, none);
    fn.setflags(attr, SETSIGDEF | SETSIGMASK | SETSID);
    return { actions, attr, release };
  } catch (err) {
    release();
    throw err;
  }
}

const hint = (file: string, options: SpawnOptions) =>
  `check that ${file} and its directory ${options.cwd} are there for the user it runs as`;

/**
 * Starts `file` (a path) in a session and process group of its own, with `argv`, and returns its pid. glibc's
 * posix_spawn clones with CLONE_VM|CLONE_VFORK: baton is paused only until the child's execve, where Node's
 * spawn forks baton's whole address space (page tables copied, every page copy-on-write until the exec) and then
 * waits for the exec too: measured 1.3 ms against 4.6 ms from a bare node, more as baton's memory grows. An exec
 * failure comes back as the call's error. The child starts with default signal dispositions and an empty mask
 * (Node ignores SIGPIPE; a signal baton holds must not stay blocked in the child), and inherits no fd of baton's
 * but its `stdio` (everything else is close-on-exec).
 */
export function spawnProcess(file: string, argv: readonly string[], options: SpawnOptions): number {
  const { actions, attr, release } = prepare(file, argv, options);
  try {
    const pid = [0];
    // vfork returns when the child's execve let go of baton's memory, before the kernel has closed its close-on-exec
    // fds or made its /proc readable to baton's user again: a check of its fds then (--ready delay:0) saw none.
    // Returns once the exec is done, as libuv's spawn does: the child's copy of a close-on-exec pipe closes there.
    const [done, open] = pipe();
    try {
      try {
        ok(fn.spawn(pid, file, actions, attr, [...argv, null], [...options.env, null]), file, hint(file, options));
      } finally {
        closeFd(open);
      }
      while (Number(libc.read(done, Buffer.alloc(1), 1)) !== 0 && errnoIs('EINTR'));
    } finally {
      closeFd(done);
    }
    return pid[0]!;
  } finally {
    release();
  }
}

/** Capabilities are per thread: set once baton dropped ambient ones on its own (libuv's workers kept theirs). */
let onThisThread = false;

/** From now on spawnProcessAsync() spawns on baton's own thread, whose credentials its children get. */
export function keepSpawnsOnThisThread(): void {
  onThisThread = true;
}

/**
 * spawnProcess() off baton's thread: posix_spawn runs on a libuv worker thread (koffi's async call), so the vfork
 * pauses that thread alone, and the wait for the child's exec (its close-on-exec pipe's EOF) is a read there too.
 * Under load the paused time is mostly the new child waiting for a core: its start, not baton's work. What is
 * baton's, the arguments and file actions, is done when `dispatched` is called, just before the call is handed to
 * the worker (whose wakeup may take baton's core for the clone: the child's start too). On baton's own thread
 * (keepSpawnsOnThisThread) it is called once the clone and exec are done: baton's thread waited for them.
 */
export function spawnProcessAsync(
  file: string,
  argv: readonly string[],
  options: SpawnOptions,
  dispatched: () => void = () => {},
): Promise<number> {
  if (onThisThread) {
    return new Promise((resolve) => {
      const pid = spawnProcess(file, argv, options);
      dispatched();
      resolve(pid);
    });
  }
  let prepared: Prepared | undefined;
  let fds: [number, number];
  try {
    prepared = prepare(file, argv, options);
    fds = pipe();
  } catch (err) {
    prepared?.release();
    return Promise.reject(err);
  }
  const { actions, attr, release } = prepared;
  const [done, open] = fds;
  const pid = [0];
  return new Promise<number>((resolve, reject) => {
    const spawned = (err: unknown, ret: number) => {
      closeFd(open);
      release();
      if (err || ret !== 0) {
        closeFd(done);
        return reject(err ?? sysError(ret, `spawn ${file}`, { default: hint(file, options) }));
      }
      const exec = (): void =>
        read(done, Buffer.alloc(1), 0, 1, null, (error, n) => {
          if ((error as NodeJS.ErrnoException | null)?.code === 'EINTR' || (!error && n !== 0)) return exec();
          closeFd(done);
          resolve(pid[0]!);
        });
      exec();
    };
    try {
      dispatched();
      fn.spawn.async(pid, file, actions, attr, [...argv, null], [...options.env, null], spawned);
    } catch (err) {
      spawned(err, -1); // koffi refused the call (too many under way): nothing was spawned
    }
  });
}
