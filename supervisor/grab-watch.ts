import { fstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';

const POLL_MS = 5;

/** A process and its descendants (via /proc/PID/task/TID/children). */
function family(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    try {
      for (const tid of readdirSync(`/proc/${out[i]}/task`)) {
        const kids = readFileSync(`/proc/${out[i]}/task/${tid}/children`, 'utf8').trim();
        if (kids) out.push(...kids.split(' ').map(Number));
      }
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** Every socket (`socket:[inode]`) open anywhere in the generation rooted at `root`, and where: pid and fd. */
export function socketHolders(root: number): Map<string, { pid: number; fd: number }> {
  const out = new Map<string, { pid: number; fd: number }>();
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
export function findSockets(root: number, wanted: string[]): Map<string, { pid: number; fd: number }> {
  return new Map([...socketHolders(root)].filter(([socket]) => wanted.includes(socket)));
}

/** Polls `probe` until it returns a value; never settles once `signal` is aborted. */
export function poll<T>(probe: () => T | undefined, signal: AbortSignal): Promise<T> {
  return new Promise((resolve) => {
    const check = () => {
      if (signal.aborted) return;
      const v = probe();
      if (v !== undefined) resolve(v);
      else setTimeout(check, POLL_MS);
    };
    check();
  });
}

/** Resolves when the generation rooted at `pid` holds every listener (seen in its fd tables). */
export function watchGrab(pid: number, listenerFds: number[], signal: AbortSignal): Promise<void> {
  const wanted = listenerFds.map((fd) => `socket:[${fstatSync(fd).ino}]`);
  return poll(() => (findSockets(pid, wanted).size === wanted.length ? true : undefined), signal).then(() => undefined);
}
