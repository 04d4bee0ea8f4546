import type { GenerationSockets } from './gen-socket.js';
import { Generation, type State, type Timings } from './generation.js';
import type { Health } from './health.js';
import type { Listener } from './listener.js';
import type { Carried } from './loop.js';
import type { RecordedProcess } from './record.js';
import { releaseIn, resolveRelease, shapeOf } from './release.js';
import type { Slots } from './slots.js';
import { setCloexec } from './sys/fd.js';
import { startTime } from './sys/proc.js';
import { monotonicMs, type Trial } from './trial.js';
import { clientFds, type History, type Requests, type UpgradeResult, type Waiter } from './upgrade.js';
import type { WaveParts } from './wave-parts.js';

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
    /** When it became active, monotonicMs() (the clock runs on across the execve); its --health failures in a row. */
    activeAt?: number;
    unhealthy?: number;
    /** Its release directory (a build before this field sent none). */
    dir?: string;
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
  /** A canary window in flight, carried on. */
  canary?: CarriedWindow;
  /** The connections of `reload --wait` clients waiting for the pending upgrade: the next program answers them. */
  clients?: number[];
  /** Under --steer: the generation sockets baton holds (each generation's `port` names its own). */
  sockets?: number[];
  /** --metrics: its listening socket, across the execve. */
  metrics?: { fd: number };
}

/** A canary window in flight (trial.ts), by pid, and the connections of the `reload --wait` clients waiting for it. */
export interface CarriedWindow {
  number: number;
  switched: Array<{ slot: number; pid?: number; old?: number }>;
  before: number;
  workers: number;
  lastBefore?: number;
  servedBefore: boolean;
  requestedAt: string;
  /** monotonicMs(): the clock runs on across the execve. */
  began: number;
  endsAt: number;
  readyMs: number;
  changes: string[];
  clients: number[];
}

/** What capture() reads from the running supervisor besides its resources. */
export interface Running {
  next: number;
  slots: Slots;
  requests: Requests;
  carried?: Carried;
  history: History;
  health: Health;
  live: Iterable<Generation>;
}

/** The wire format between two baton programs: its field names stay as they are across versions. */
export function capture(
  resources: Pick<ResumeState, 'listeners' | 'runtimeDir' | 'startedAt'> & {
    recordedOrphans: RecordedProcess[];
    sockets?: GenerationSockets;
  },
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
    pending: r.requests.wanted,
    startedAt: resources.startedAt,
    history: r.history.list(),
    ...(last ? { lastActive: last.pid } : {}),
    ...(orphans.length > 0 ? { orphans } : {}),
    ...(r.carried ? { canary: carryWindow(r.carried) } : {}),
    ...(r.requests.wanted ? { clients: clientFds(r.requests.waiters) } : {}),
    ...(resources.sockets ? { sockets: resources.sockets.all().map((s) => s.listener.fd) } : {}),
    generations: [...r.live].map((g) => ({
      number: g.number,
      worker: g.worker,
      pid: g.pid,
      state: g.state,
      ageMs: g.ms(),
      own: g.held ? [g.held.fd] : [],
      ...(g.held ? { port: g.held.port } : {}),
      times: g.times,
      ...(g.activeSince === undefined ? {} : { activeAt: monotonicMs() - (performance.now() - g.activeSince) }),
      ...(r.health.inRow(g) > 0 ? { unhealthy: r.health.inRow(g) } : {}),
      dir: g.release.dir,
    })),
  };
}

function carryWindow({ trial, waiters }: Carried): CarriedWindow {
  const { number, before, workers, servedBefore, requestedAt, began, readyMs, changes } = trial;
  return {
    ...{ number, before, workers, servedBefore, requestedAt, began, endsAt: trial.endsAt ?? began, readyMs },
    switched: trial.switched.map(({ slot, gen, old }) => ({ slot, pid: gen?.pid, old: old?.pid })),
    ...(trial.lastBefore ? { lastBefore: trial.lastBefore.pid } : {}),
    changes,
    clients: clientFds(waiters),
  };
}

/** The window the previous program carried, on the generations this one adopted; who is gone has exited. */
function resumeWindow(w: CarriedWindow, adopted: Generation[], p: Pick<Restoring, 'answer'>): Carried {
  const byPid = (pid?: number) => adopted.find((g) => pid !== undefined && g.pid === pid);
  // settle() puts the new ones on trial before anything can route their exit.
  const switched = w.switched.map(({ slot, pid, old }) => ({ slot, gen: byPid(pid), old: byPid(old) }));
  const gone = switched.find((s) => !s.gen);
  const worker = gone && w.workers > 1 ? ` (worker ${gone.slot})` : '';
  const lost = gone ? { lost: `generation ${w.number}${worker} exited while baton's program was replaced` } : {};
  const trial: Trial = { ...w, switched, lastBefore: byPid(w.lastBefore), ...lost };
  return { trial, waiters: answer(w.clients, p) };
}

/** `reload --wait` clients carried over: their connections stay out of every child; the answer goes to each. */
function answer(fds: number[], p: Pick<Restoring, 'answer'>): Waiter[] {
  for (const fd of fds) setCloexec(fd, true);
  return fds.map((fd) => p.answer(fd));
}

/** The generations the previous program ran, as Generations of this one (still baton's children). */
function adopt(state: ResumeState, p: Pick<Restoring, 'log' | 'config' | 'health' | 'sockets'>): Generation[] {
  const { log, config, health } = p;
  return state.generations.map((g) => {
    // Its release directory as the previous program knew it, never its working directory: a generation may chdir
    // to one of its own, with env files that its probes and crash restarts (run as root without --user) would
    // take; from a build that sent none, the release --cwd leads to now. Its env files and options as they read
    // now (the previous program's are not carried): this program's configuration, which its restarts and stop follow.
    const found = g.dir === undefined ? resolveRelease(config) : releaseIn(g.dir, config);
    const release = 'reason' in found ? { ...shapeOf(config), dir: g.dir ?? config.cwd, env: {} } : found;
    const gen = new Generation(g.number, { pid: g.pid, state: g.state, ageMs: g.ageMs, release }, log, g.worker);
    for (const fd of g.own) setCloexec(fd, true);
    const [fd] = g.own;
    if (fd !== undefined && g.port !== undefined) gen.held = { fd, port: g.port };
    gen.socket = g.port === undefined ? undefined : p.sockets?.byPort(g.port);
    gen.socket?.use(gen.exited);
    Object.assign(gen.times, g.times);
    if (g.activeAt !== undefined) gen.activeSince = performance.now() - (monotonicMs() - g.activeAt);
    health.carried(gen, g.unhealthy ?? 0);
    return gen;
  });
}

/** What restore() hands the adopted generations to. */
export type Restoring = Pick<WaveParts, 'config' | 'log' | 'slots' | 'retirement' | 'live' | 'health' | 'sockets'> & {
  /** From now on baton watches the process: its exit is routed like a spawned one's. */
  track(gen: Generation): void;
  /** Who waits on the carried connection `fd`. */
  answer(fd: number): Waiter;
};

/**
 * The resumed side of a self-upgrade: take over the generations the previous program ran, the canary window it
 * carried, and the `reload --wait` clients waiting for the pending upgrade.
 */
export function restore(p: Restoring, state: ResumeState): { carried?: Carried; waiting: Waiter[] } {
  const adopted = adopt(state, p);
  const carried = state.canary && resumeWindow(state.canary, adopted, p);
  for (const gen of adopted) {
    p.track(gen);
    if (gen.state === 'active') p.slots.take(gen.worker, gen);
    if (gen.times.stop !== undefined) void gen.stop();
  }
  p.slots.lastActive = adopted.find((g) => g.pid === state.lastActive);
  p.sockets?.tidy(); // one that nothing of this program uses, nor serves from
  p.retirement.carry(adopted);
  const message = `took over ${state.generations.length} generation(s)`;
  const window = carried ? { canary: Math.max(0, Math.round(carried.trial.endsAt! - monotonicMs())) } : {};
  p.log.event('resumed', { message, serving: p.slots.newest, ...window });
  resumeTimers(p, carried?.trial);
  return { carried, waiting: answer(state.clients ?? [], p) };
}

/**
 * After a self-upgrade (done or failed): drain timers again, and empty slots restart. Not those of a canary window
 * in flight: its old workers drain until it ends, and its rollback refills a slot whose new worker is gone.
 */
export function resumeTimers(p: Pick<WaveParts, 'slots' | 'retirement' | 'live'>, trial?: Trial): void {
  const held = new Set(trial?.switched.flatMap(({ old }) => (old ? [old] : [])));
  const rolling = new Set(trial?.switched.map(({ slot }) => slot));
  for (const g of p.live) if (g.state === 'draining' && !held.has(g)) p.retirement.drainLater(g);
  for (let slot = 0; slot < p.slots.length; slot++) {
    if (p.slots.at(slot) || rolling.has(slot)) continue;
    p.slots.crashed(slot, 'no process was serving in this slot across the self-upgrade');
  }
}
