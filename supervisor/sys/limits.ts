import { readdirSync, readFileSync } from 'node:fs';

/** File descriptors: the soft limit (`ulimit -n`, RLIMIT_NOFILE; Infinity when unlimited) and those in use below it. */
export function openFiles(): { limit: number; open: number } {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
  const limit = soft === undefined || soft === 'unlimited' ? Infinity : Number(soft);
  // An fd at or above the limit (inherited from a parent with a higher one) takes no number baton could get.
  const open = readdirSync('/proc/self/fd').filter((fd) => Number(fd) < limit).length - 1; // less the listing's own
  return { limit, open };
}
