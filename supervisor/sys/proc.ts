import { closeSync, existsSync, fstatSync, openSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';

/**
 * What baton reads of processes in /proc: their children, open sockets, stat, command line, and
 * its own network namespace. No koffi here: the child helper imports this file too.
 */

/** Where a socket is open: the process and its fd number. */
export interface Holder {
  pid: number;
  fd: number;
}

/** How /proc/PID/fd names the socket open at baton's `fd`: `socket:[inode]`. */
export function socketOf(fd: number): string {
  return `socket:[${fstatSync(fd).ino}]`;
}

/** The children of `pid` (of every thread); as many as were read before it exited. */
function children(pid: number | 'self'): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const kids = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (kids) out.push(...kids.split(' ').map(Number));
    }
  } catch {
    // exited meanwhile
  }
  return out;
}

/** A process and its descendants (a child that left the process group or session is still a child). */
export function family(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) out.push(...children(out[i]!));
  return out;
}

/** The fields of /proc/PID/stat from field 3 (the state) on, or undefined once it is gone. */
function stat(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: the fields start after its last ')'.
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** The sockets (`socket:[inode]`) open in `pid`, fd by fd, with the fd; none once it is gone. */
function* socketsIn(pid: number): Generator<[string, number]> {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return; // exited meanwhile, or not ours to read
  }
  for (const fd of fds) {
    try {
      const link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (link.startsWith('socket:')) yield [link, Number(fd)];
    } catch {
      // closed meanwhile
    }
  }
}

/** The sockets (`socket:[inode]`) open in `pid`, each with its first fd. */
function sockets(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const [link, fd] of socketsIn(pid)) if (!out.has(link)) out.set(link, fd);
  return out;
}

/** Every socket (`socket:[inode]`) open anywhere in the generation rooted at `root`, and where: pid and fd. */
export function socketHolders(root: number): Map<string, Holder> {
  const out = new Map<string, Holder>();
  for (const pid of family(root)) {
    for (const [socket, fd] of sockets(pid)) if (!out.has(socket)) out.set(socket, { pid, fd });
  }
  return out;
}

/** Inodes of every socket open in the generation rooted at `root`. */
export function socketInodes(root: number): number[] {
  return [...socketHolders(root).keys()].map((link) => Number(link.slice('socket:['.length, -1)));
}

/**
 * Where in the generation rooted at `root` each wanted socket (`socket:[inode]`) is open: pid and fd. It looks
 * no further once it has found them all: in the common case, at the root's first fds (a check after ready).
 * `deep` false: in the root alone.
 */
export function findSockets(root: number, wanted: string[], deep = true): Map<string, Holder> {
  const out = new Map<string, Holder>();
  /** Whether `pid` held the last of them. */
  const look = (pid: number) => {
    for (const [socket, fd] of socketsIn(pid)) {
      if (!wanted.includes(socket) || out.has(socket)) continue;
      out.set(socket, { pid, fd });
      if (out.size === wanted.length) return true;
    }
    return false;
  };
  if (wanted.length === 0 || look(root) || !deep) return out;
  for (const pid of family(root).slice(1)) if (look(pid)) break;
  return out;
}

/**
 * Every process on the host with one of `wanted` (`socket:[inode]`) open, and which: the same
 * socket in two processes is two entries. Reads every fd table it may: ~60 µs a process.
 */
export function socketHoldersAnywhere(wanted: string[]): Array<Holder & { socket: string }> {
  const out: Array<Holder & { socket: string }> = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    for (const [socket, fd] of sockets(pid)) if (wanted.includes(socket)) out.push({ pid, fd, socket });
  }
  return out;
}

/** This process's children (a subreaper's include orphaned descendants). */
export function ownChildPids(): number[] {
  return children('self');
}

/** This process's children that have exited and wait to be reaped. */
export function zombieChildren(): number[] {
  return children('self').filter((pid) => stat(pid)?.[0] === 'Z');
}

/** Field 5 of /proc/PID/stat: the process group; undefined once it is gone. */
export function processGroup(pid: number): number | undefined {
  const pgrp = stat(pid)?.[2];
  return pgrp === undefined ? undefined : Number(pgrp);
}

/** Field 4 of /proc/PID/stat: the parent; undefined once it is gone. */
export function parentPid(pid: number): number | undefined {
  const ppid = stat(pid)?.[1];
  return ppid === undefined ? undefined : Number(ppid);
}

/** The environment `pid` was started with (exec time), as NAME=VALUE entries; [] when it cannot be read. */
export function environ(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
  } catch {
    return [];
  }
}

/** Field 22 of /proc/PID/stat: tells a process from a later one that reused its pid. */
export function startTime(pid: number): string | undefined {
  return stat(pid)?.[19];
}

/** `pid` is the process that started at `starttime` and has not exited (a zombie has). */
export function alive(pid: number, starttime: string): boolean {
  const s = stat(pid);
  return s !== undefined && s[19] === starttime && s[0] !== 'Z';
}

/** `pid` (never 0 or 1) is the live process that started at `starttime` with each of `env` in its environment. */
export function startedAs(pid: number, starttime: string, env: string[]): boolean {
  if (pid <= 1 || !alive(pid, starttime)) return false;
  const has = environ(pid);
  return env.every((e) => has.includes(e));
}

/** The command line of `pid` (NUL-separated), or '' when it cannot be read. */
export function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return '';
  }
}

/** The command line of `pid`, its arguments joined by spaces; '' when it cannot be read. */
export function commandLine(pid: number): string {
  return cmdline(pid).split('\0').join(' ').trim();
}

const NETNS = '/proc/self/ns/net';

/** The inode of this process's network namespace. */
export function netnsInode(): number {
  return statSync(NETNS).ino;
}

/** Calls `use` with an fd on this process's network namespace, closed afterwards. */
export function withNetns<T>(use: (fd: number) => T): T {
  const fd = openSync(NETNS, 'r');
  try {
    return use(fd);
  } finally {
    closeSync(fd);
  }
}

const YAMA = '/proc/sys/kernel/yama/ptrace_scope';

/** Yama's ptrace_scope, or undefined on a kernel without Yama. */
export function yamaScope(): number | undefined {
  return existsSync(YAMA) ? Number(readFileSync(YAMA, 'utf8').trim()) : undefined;
}
