import type { Config } from './config.js';
import { BatonError } from './errors.js';
import { Generation, type State, type Timings } from './generation.js';
import type { Listener } from './listener.js';
import type { Logger } from './log.js';
import type { RecordedProcess } from './record.js';
import { releaseIn, shapeOf } from './release.js';
import type { Slots } from './slots.js';
import { setCloexec } from './sys/fd.js';
import { startTime, workingDirectory } from './sys/proc.js';
import { execve } from './sys/process.js';
import type { History, UpgradeResult } from './upgrade.js';
import type { WaveParts } from './wave.js';

export const RESUME_ENV = 'BATON_RESUME';

/** What a baton hands to the program it execs into: enough to go on without disturbing a generation. */
export interface ResumeState {
  listeners: Listener[];
  runtimeDir: string;
  next: number;
  failures: number;
  crashes: number[];
  workers: number;
  pending: boolean;
  startedAt: number;
  history: UpgradeResult[];
  /** pid of the last active process. */
  lastActive?: number;
  generations: Array<{
    number: number;
    worker: number;
    pid: number;
    state: State;
    ageMs: number;
    own: number[];
    port?: number;
    times: Timings;
  }>;
  // Optional fields: a build that does not know one ignores it (and one that predates it does not send it).
  /** Signals that arrived from freeze() to the execve, in order: the next program handles them. */
  signals?: string[];
  /** The control socket, listening across the execve: its fd, and the directories made for it. */
  control?: { fd: number; made: string[] };
  /** Generations of a dead baton that a takeover was still retiring (they are retired again). */
  orphans?: RecordedProcess[];
  /** The oom_score_adj children get, when baton lowered its own. */
  oomScoreAdj?: number;
  /** baton's fd of /proc/self/oom_score_adj (not dumpable, a non-root baton could not open it again). */
  oomFd?: number;
  /** Log lines stderr's reader had not taken by the execve (lost): the next program reports them. */
  logDropped?: number;
  /** The process that wrote the state (pid, start time): only it, after its execve, takes the state. */
  from?: { pid: number; starttime: string };
}

/** What capture() reads from the running supervisor besides its resources. */
export interface Running {
  next: number;
  slots: Slots;
  pending: boolean;
  history: History;
  live: Iterable<Generation>;
}

/** The wire format between two baton programs: its field names stay as they are across versions. */
export function capture(
  resources: Pick<ResumeState, 'listeners' | 'runtimeDir' | 'startedAt'> & { recordedOrphans: RecordedProcess[] },
  r: Running,
): ResumeState {
  const last = r.slots.lastActive;
  const orphans = resources.recordedOrphans;
  return {
    from: { pid: process.pid, starttime: startTime(process.pid) ?? '' },
    listeners: resources.listeners,
    runtimeDir: resources.runtimeDir,
    next: r.next,
    failures: r.history.failures,
    crashes: r.slots.crashes(),
    workers: r.slots.length,
    pending: r.pending,
    startedAt: resources.startedAt,
    history: r.history.list(),
    ...(last ? { lastActive: last.pid } : {}),
    ...(orphans.length > 0 ? { orphans } : {}),
    generations: [...r.live].map((g) => ({
      number: g.number,
      worker: g.worker,
      pid: g.pid,
      state: g.state,
      ageMs: g.ms(),
      own: g.held ? [g.held.fd] : [],
      ...(g.held ? { port: g.held.port } : {}),
      times: g.times,
    })),
  };
}

/** The generations the previous program ran, as Generations of this one (still baton's children). */
function adopt(state: ResumeState, log: Logger, config: Config): Generation[] {
  return state.generations.map((g) => {
    // Where it runs, from the kernel; its env files and options as they read now (the previous program's are not
    // carried): this program's configuration, which its crash restarts and its stop follow.
    const dir = workingDirectory(g.pid);
    const found = releaseIn(dir, config);
    const release = 'reason' in found ? { ...shapeOf(config), dir, env: {} } : found;
    const gen = new Generation(g.number, { pid: g.pid, state: g.state, ageMs: g.ageMs, release }, log, g.worker);
    for (const fd of g.own) setCloexec(fd, true);
    const [fd] = g.own;
    if (fd !== undefined && g.port !== undefined) gen.held = { fd, port: g.port };
    Object.assign(gen.times, g.times);
    return gen;
  });
}

/** What restore() hands the adopted generations to. */
export type Restoring = Pick<WaveParts, 'config' | 'log' | 'slots' | 'retirement' | 'live'> & {
  /** From now on baton watches the process: its exit is routed like a spawned one's. */
  track(gen: Generation): void;
};

/** The resumed side of a self-upgrade: take over the generations the previous program ran. */
export function restore(p: Restoring, state: ResumeState): void {
  const adopted = adopt(state, p.log, p.config);
  for (const gen of adopted) {
    p.track(gen);
    if (gen.state === 'active') p.slots.take(gen.worker, gen);
    if (gen.times.stop !== undefined) void gen.stop();
  }
  p.slots.lastActive = adopted.find((g) => g.pid === state.lastActive);
  p.retirement.carry(adopted);
  const message = `took over ${state.generations.length} generation(s)`;
  p.log.event('resumed', { message, serving: p.slots.newest });
  resumeTimers(p);
}

/** After a self-upgrade (done or failed): drain timers again, and empty slots restart. */
export function resumeTimers(p: Pick<WaveParts, 'slots' | 'retirement' | 'live'>): void {
  for (const g of p.live) if (g.state === 'draining') p.retirement.drainLater(g);
  for (let slot = 0; slot < p.slots.length; slot++) {
    if (!p.slots.at(slot)) p.slots.crashed(slot, 'no process was serving in this slot across the self-upgrade');
  }
}

/**
 * Replaces baton's program in place (execve): same pid, so systemd's main pid and the children
 * stay. The fds the state names are made inheritable first; if execve fails they are closed-on-exec
 * again and an error is thrown, and the caller goes on as before.
 */
export function execSelf(
  state: ResumeState,
  nodeFlags = process.execArgv,
  extraEnv: Record<string, string> = {},
): never {
  const fds = [...state.listeners.map((l) => l.fd), ...state.generations.flatMap((g) => g.own)];
  if (state.control) fds.push(state.control.fd);
  if (state.oomFd !== undefined) fds.push(state.oomFd);
  for (const fd of fds) setCloexec(fd, false);
  // libuv marks stdio close-on-exec when it wraps a pipe; the next program needs them too.
  for (const fd of [0, 1, 2]) {
    try {
      setCloexec(fd, false);
    } catch {
      // not open
    }
  }
  // `--`: Node 20 would take baton's own --env-file for its own (see cli.ts).
  const argv = [process.execPath, ...nodeFlags, '--', ...process.argv.slice(1)];
  const env = Object.entries({ ...process.env, ...extraEnv, [RESUME_ENV]: JSON.stringify(state) }).map(
    ([k, v]) => `${k}=${v}`,
  );
  execve(process.execPath, argv, env);
  for (const fd of fds) setCloexec(fd, true);
  throw new BatonError(
    'ERR_BATON_EXEC',
    `execve ${process.execPath} failed`,
    'check that the node binary and baton are still in place',
  );
}
