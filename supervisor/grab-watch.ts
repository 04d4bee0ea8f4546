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

function sockets(pid: number): Set<string> {
  const found = new Set<string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        found.add(readlinkSync(`/proc/${pid}/fd/${fd}`));
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    // exited meanwhile
  }
  return found;
}

/** Resolves when the generation rooted at `pid` holds every listener (seen in its fd tables). */
export function watchGrab(pid: number, listenerFds: number[], signal: AbortSignal): Promise<void> {
  const wanted = listenerFds.map((fd) => `socket:[${fstatSync(fd).ino}]`);
  return new Promise((resolve) => {
    const check = () => {
      if (signal.aborted) return;
      const held = new Set<string>();
      for (const p of family(pid)) for (const s of sockets(p)) held.add(s);
      if (wanted.every((w) => held.has(w))) resolve();
      else setTimeout(check, POLL_MS);
    };
    check();
  });
}
