// Processes as the kernel shows them (never baton's log), and what the tests that time them share.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { type Baton, childrenOf } from './baton.js';
import { hammer } from './load.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The end of baton's log, to explain a surprising exit status. */
export const tail = (baton: Baton) => baton.stderr.split('\n').slice(-30).join('\n');

/** `f()` once it is not undefined, asked every `every` ms. */
export async function until<T>(what: string, f: () => T | undefined, timeout = 20_000, every = 10): Promise<T> {
  const end = Date.now() + timeout;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${timeout} ms`);
    await sleep(every);
  }
}

/** Two loads at once, as in the zero-downtime tests: a new connection per request, and keep-alive. */
export function load(port: number, maxMs: number, maxRequests?: number) {
  const fresh = hammer({ port, keepAlive: false, concurrency: 2, maxMs, maxRequests });
  const kept = hammer({ port, keepAlive: true, concurrency: 2, maxMs, maxRequests });
  return { stop: async () => ({ fresh: await fresh.stop(), kept: await kept.stop() }) };
}

/** Clock ticks per second of /proc/PID/stat (100 on every Linux build we know of). */
const HZ = ((): number => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })) || 100;
  } catch {
    return 100;
  }
})();
/** /proc/uptime and /proc/PID/stat both count from boot, in 10 ms steps: allow this much either way. */
export const TICK = 20;

/** ms since boot: the clock of /proc/PID/stat's start time. */
export function uptime(): number {
  return Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 1000;
}

/** The file's text, or '' if it cannot be read (a process that is gone). */
export function readOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** A process's state letter and real start time (ms since boot); undefined once it is gone. */
function stat(pid: number): { state: string; start: number } | undefined {
  const s = readOr(`/proc/${pid}/stat`);
  if (!s) return undefined;
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return { state: f[0]!, start: (Number(f[19]) * 1000) / HZ };
}

/** A process's start time (from /proc/PID/stat): tells it from a later one with its pid; undefined once it has
 * exited (a zombie counts). */
export function startTime(pid: number): string | undefined {
  const s = stat(pid);
  return s && s.state !== 'Z' ? String(s.start) : undefined;
}

/** Baton's children that still run (a zombie is listed until baton reaps it). */
export function running(parent: number): number[] {
  return childrenOf(parent).filter((pid) => {
    const s = stat(pid);
    return s !== undefined && s.state !== 'Z';
  });
}

/** One process: its generation and worker slot from its own environment, its real start, its exit. */
export interface Proc {
  pid: number;
  generation: number;
  worker: number;
  start: number;
  /** Last seen running (ms since boot); at or before its exit. */
  alive: number;
  /** First seen gone (a zombie or reaped); at or after its exit. */
  gone?: number;
}

/** Polls baton's children every 5 ms; each is named by the BATON_GENERATION and BATON_WORKER it was given. */
export class Watch {
  /** Every process seen, in the order first seen. */
  readonly procs: Proc[] = [];
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly parent: number) {
    this.timer = setInterval(() => this.look(), 5);
    this.look();
  }

  private look(): void {
    const before = uptime();
    for (const p of this.procs.filter((q) => q.gone === undefined)) {
      const s = stat(p.pid);
      if (s && s.state !== 'Z' && s.start === p.start) p.alive = before;
      else p.gone = uptime();
    }
    let kids: number[] = [];
    try {
      kids = childrenOf(this.parent);
    } catch {
      return; // baton is gone
    }
    for (const pid of kids) {
      if (this.procs.some((p) => p.pid === pid && p.gone === undefined)) continue;
      const s = stat(pid);
      const env = readOr(`/proc/${pid}/environ`);
      const generation = /(?:^|\0)BATON_GENERATION=(\d+)/.exec(env)?.[1];
      const worker = /(?:^|\0)BATON_WORKER=(\d+)/.exec(env)?.[1];
      // Not exec'd yet (still baton's copy): looked at again in 5 ms.
      if (!s || !generation || !worker) continue;
      this.procs.push({ pid, generation: Number(generation), worker: Number(worker), start: s.start, alive: before });
    }
  }

  /** The processes of `generation` seen so far, by worker slot. */
  seen(generation: number): Proc[] {
    return this.procs.filter((p) => p.generation === generation).sort((a, b) => a.worker - b.worker);
  }

  /** The first process of `generation` (a baton without --workers runs one), once it has been seen. */
  first(generation: number, timeout = 20_000): Promise<Proc> {
    const found = () => this.procs.find((q) => q.generation === generation);
    return until(`a process of generation ${generation}`, found, timeout, 5);
  }

  /** The process of `generation` in slot `worker`, once it has been seen. */
  slot(generation: number, worker: number, timeout = 20_000): Promise<Proc> {
    const found = () => this.procs.find((q) => q.generation === generation && q.worker === worker);
    return until(`generation ${generation} worker ${worker}`, found, timeout, 5);
  }

  /** `p` once it has been seen gone. */
  exit(p: Proc, timeout = 20_000): Promise<Required<Proc>> {
    const gone = () => (p.gone === undefined ? undefined : (p as Required<Proc>));
    return until(`pid ${p.pid} gone`, gone, timeout, 5);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/** A process's parent and process group (/proc/PID/stat); undefined once it is gone. */
export function lineage(pid: number): { ppid: number; pgid: number } | undefined {
  const s = readOr(`/proc/${pid}/stat`);
  if (!s) return undefined;
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return { ppid: Number(f[1]), pgid: Number(f[2]) };
}

/** True once `pid` has exited: gone from /proc, or a zombie nobody has reaped yet. */
export function ended(pid: number): boolean {
  const s = stat(pid);
  return s === undefined || s.state === 'Z';
}

/** For until(): true once every one of `pids` has ended. */
export const allEnded = (pids: number[]) => () => (pids.every(ended) ? true : undefined);

/**
 * A helper command baton runs (a --check or a probe: `sh -c`, which started a sleep) is baton's child
 * and leads a process group of its own, which its sleep is in, and which is not baton's.
 */
export function ownGroup(t: ExecutionContext, parent: number, [shell, sleeper]: number[]): void {
  t.deepEqual(lineage(shell!), { ppid: parent, pgid: shell });
  t.is(lineage(sleeper!)?.pgid, shell);
  t.not(shell, lineage(parent)?.pgid, "not baton's group");
}

/**
 * What each fd of `pid` is open on, in fd order (read from /proc/PID/fd); an fd closed between the listing and
 * the look is left out, and a process that is gone has none.
 */
export function fdLinks(pid: number): string[] {
  const dir = `/proc/${pid}/fd`;
  let fds: string[];
  try {
    fds = readdirSync(dir);
  } catch {
    return []; // gone
  }
  return fds
    .sort((a, b) => Number(a) - Number(b))
    .flatMap((fd) => {
      try {
        return [readlinkSync(`${dir}/${fd}`)];
      } catch {
        return []; // closed meanwhile
      }
    });
}

/** How many of `pid`'s fds are open on `path`. */
export const fdsOn = (pid: number, path: string): number => fdLinks(pid).filter((l) => l === path).length;

/** The sockets (`socket:[inode]`) `pid` holds. */
export const socketsOf = (pid: number): string[] => fdLinks(pid).filter((l) => l.startsWith('socket:'));

/** `pid`'s environment variable `name`, as it was started with (from the kernel). */
export function envVar(pid: number, name: string): string | undefined {
  const entry = readFileSync(`/proc/${pid}/environ`, 'utf8')
    .split('\0')
    .find((e) => e.startsWith(`${name}=`));
  return entry?.slice(name.length + 1);
}

/** The pids on the first line `file` gets (a test's command writes "$$ $!" there), once it has one. */
export function recorded(file: string, timeout = 20_000): Promise<number[]> {
  const line = () => /^(\d+(?: \d+)*)\n/.exec(readOr(file))?.[1];
  return until(`pids in ${file}`, line, timeout).then((l) => l.split(' ').map(Number));
}

/** A file a test's command writes its pids to (see recorded()); those still there are killed after the test. */
export function pidsFile(t: ExecutionContext): { file: string; pids: number[] } {
  const dir = mkdtempSync(join(tmpdir(), 'baton-pids-'));
  const out = { file: join(dir, 'pids'), pids: [] as number[] };
  t.teardown(() => {
    killAll(out.pids);
    rmSync(dir, { recursive: true, force: true });
  });
  return out;
}

/** SIGKILL for processes the test itself started (through baton) that are still there: cleanup after a failure. */
export function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      if (!ended(pid)) process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
}
