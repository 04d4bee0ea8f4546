import { closeSync, existsSync, openSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';

/**
 * What baton reads of processes in /proc: their children, open sockets, stat, command line, and
 * its own network namespace. No koffi here: the child helper imports this file too.
 */

/** Where a socket is open: the process and its fd number. */
export interface Holder {
  pid: number;
  fd: number;
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

/** A process and its descendants. */
function family(pid: number): number[] {
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

/** Every socket (`socket:[inode]`) open anywhere in the generation rooted at `root`, and where: pid and fd. */
export function socketHolders(root: number): Map<string, Holder> {
  const out = new Map<string, Holder>();
  for (const pid of family(root)) {
    try {
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        try {
          const link = readlinkSync(`/proc/${pid}/fd/${fd}`);
          if (link.startsWith('socket:') && !out.has(link)) out.set(link, { pid, fd: Number(fd) });
        } catch {
          // closed meanwhile
        }
      }
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** Inodes of every socket open in the generation rooted at `root`. */
export function socketInodes(root: number): number[] {
  return [...socketHolders(root).keys()].map((link) => Number(link.slice('socket:['.length, -1)));
}

/** Where in the generation rooted at `root` each wanted socket (`socket:[inode]`) is open: pid and fd. */
export function findSockets(root: number, wanted: string[]): Map<string, Holder> {
  return new Map([...socketHolders(root)].filter(([socket]) => wanted.includes(socket)));
}

/** This process's children that have exited and wait to be reaped. */
export function zombieChildren(): number[] {
  return children('self').filter((pid) => stat(pid)?.[0] === 'Z');
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

/** The environment `pid` was started with, or undefined when it cannot be read (another user's, gone). */
export function environ(pid: number): Map<string, string> | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/environ`, 'utf8');
    return new Map(text.split('\0').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  } catch {
    return undefined;
  }
}

/** Every process that has one of the sockets `inodes` open (all of /proc: for error messages only). */
export function holdersOf(inodes: Set<number>): number[] {
  const links = new Set([...inodes].map((i) => `socket:[${i}]`));
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readdirSync(`/proc/${entry}/fd`).some((fd) => links.has(readLink(`/proc/${entry}/fd/${fd}`)))) {
        out.push(Number(entry));
      }
    } catch {
      // exited, or not ours to read
    }
  }
  return out;
}

function readLink(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return '';
  }
}

/** The command line of `pid` (NUL-separated), or '' when it cannot be read. */
export function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return '';
  }
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
