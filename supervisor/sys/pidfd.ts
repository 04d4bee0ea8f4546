import { closeFd } from './fd.js';
import { check, libc } from './libc.js';
import { socketHolders } from './proc.js';

// New syscalls share one number on every architecture since 5.1 (x86_64, arm64, ...).
const SYS_pidfd_open = 434;
const SYS_pidfd_getfd = 438;

const hints = {
  ENOSYS: 'pidfd_getfd needs Linux 5.6 or newer; use --handover inherit on older kernels',
  EPERM:
    'the caller needs ptrace rights over the target (same uid, no Yama restriction, or CAP_SYS_PTRACE); ' +
    'use --handover inherit for a child in a restricted container',
  EBADF: 'the target has no such fd: check _FD, or that the target is the process that owns the listener',
  ESRCH: 'the target process has exited',
};

export function pidfdOpen(pid: number): number {
  return check(libc.syscall(SYS_pidfd_open, 'long', pid, 'long', 0), 'pidfd_open', hints, { pid });
}

/** A copy of `fd` from the process behind `pidfd`; the kernel sets close-on-exec on it. */
export function pidfdGetfd(pidfd: number, fd: number, pid?: number): number {
  return check(libc.syscall(SYS_pidfd_getfd, 'long', pidfd, 'long', fd, 'long', 0), 'pidfd_getfd', hints, { pid, fd });
}

/** pidfd_open + pidfd_getfd for each fd, closing the pidfd afterwards. */
export function grabFds(pid: number, fds: number[]): number[] {
  const pidfd = pidfdOpen(pid);
  try {
    return fds.map((fd) => pidfdGetfd(pidfd, fd, pid));
  } finally {
    libc.close(pidfd);
  }
}

/** Which sockets pullSocket copies, and what a failed copy does. */
export interface PullOptions {
  /** The sockets (`socket:[inode]`) worth a copy; every one by default. */
  among?: (socket: string) => boolean;
  /** A socket that cannot be copied throws; by default it is passed over (closed meanwhile, or not ours to take). */
  strict?: boolean;
}

/**
 * A copy of the first socket open in the process tree rooted at `root` that `accept` takes (given
 * the copy and its `socket:[inode]`); every other copy is closed. Undefined when none is taken.
 */
export function pullSocket(
  root: number,
  accept: (copy: number, socket: string) => boolean,
  { among = () => true, strict = false }: PullOptions = {},
): number | undefined {
  for (const [socket, where] of socketHolders(root)) {
    if (!among(socket)) continue;
    let copy: number;
    try {
      copy = grabFds(where.pid, [where.fd])[0]!;
    } catch (err) {
      if (strict) throw err;
      continue;
    }
    if (accept(copy, socket)) return copy;
    closeFd(copy);
  }
  return undefined;
}
