import { spawning, track } from './children.js';
import { commandPath } from './command.js';
import { Escapees } from './escapees.js';
import { describeExit, type ExitStatus, exitCode } from './exit-status.js';
import { watchExit } from './exits.js';
import type { GenerationSocket } from './gen-socket.js';
import type { Held } from './handover/handover.js';
import type { Fields, Logger } from './log.js';
import type { Release } from './release.js';
import { closeFd } from './sys/fd.js';
import { withChildOomScore } from './sys/oom.js';
import { startTime } from './sys/proc.js';
import { signalGroup } from './sys/process.js';
import { type Stdio, spawnProcessAsync } from './sys/spawn.js';

export const STATES = ['starting', 'ready', 'active', 'draining', 'exited', 'failed'] as const;
export type State = (typeof STATES)[number];

/** Why baton SIGKILLed a process: a few words, for metrics (the log's message says it in full). */
export const KILL_CAUSES = ['kill-timeout', 'max-draining', 'failed-start', 'second-stop'] as const;
export type KillCause = (typeof KILL_CAUSES)[number];

/** The only transitions a generation may take; anything else is a bug in baton. */
const NEXT: Record<State, readonly State[]> = {
  starting: ['ready', 'failed'],
  ready: ['active', 'failed'],
  active: ['draining', 'exited'],
  // draining → active: a failed rolling wave gives the old workers their slots back.
  draining: ['exited', 'active'],
  exited: [],
  failed: [],
};

/** The fields of the `exit` event. */
export function exitFields(gen: Generation, s: ExitStatus): Fields {
  const { grab, ready, stop, exit } = gen.times;
  const { number: generation, worker, pid } = gen;
  return { generation, worker, pid, message: describeExit(s), code: exitCode(s), grab, ready, stop, exit };
}

export interface SpawnPlan {
  file: string;
  args: string[];
  /** The release it runs: its directory (the cwd) and the variables of its env files (resolved at its launch). */
  release: Release;
  env: NodeJS.ProcessEnv;
  stdio: Stdio[];
}

/** A generation that outlived an execve of baton: still baton's child, but unknown to libuv. */
export interface Adopted {
  pid: number;
  state: State;
  ageMs: number;
  release: Release;
}

/** A process baton has just spawned: `spawnedAt`, when its spawn began; pid 0 when it failed (logged). */
interface Spawned {
  pid: number;
  spawnedAt: number;
  release: Release;
}

/**
 * Spawns `plan` (its file looked up in the PATH of its env, as execvp would): resolves with its pid once its exec is
 * done, or with 0 after `failed`. baton's part (the env, the lookup, the file actions) is done when this returns.
 */
function start(plan: SpawnPlan, failed: (message: string) => void, dispatched: () => void): Promise<number> {
  const env = Object.entries(plan.env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`]));
  const file = commandPath(plan.file, plan.env.PATH) ?? plan.file;
  const opts = { cwd: plan.release.dir, env, stdio: plan.stdio };
  const spawn = () => spawnProcessAsync(file, [plan.file, ...plan.args], opts, dispatched);
  return withChildOomScore(spawn).catch((err: Error) => {
    failed(err.message);
    return 0;
  });
}

/** Milestones in ms since spawn. */
export interface Timings {
  grab?: number;
  ready?: number;
  stop?: number;
  exit?: number;
}

/** One run of the wrapped command, in a process group of its own (pgid = pid). */
export class Generation {
  readonly number: number;
  /** The worker slot (0..N-1) this process serves in. */
  readonly worker: number;
  readonly pid: number;
  /** Its start time in /proc (empty for no process): with the pid, what names it in a record or state file. */
  readonly starttime: string;
  /** Where it runs (the release a deploy's link named when it was launched), and its env files' variables. */
  readonly release: Release;
  readonly exited: Promise<ExitStatus>;
  readonly spawnedAt: number;
  readonly times: Timings = {};
  state: State = 'starting';
  activeSince?: number;
  /**
   * baton's copy of the generation's own listener, and its port: the one it bound itself (port handover) or its
   * generation socket (under --steer). Its queue is emptied before the stop signal; the steering slot takes it.
   */
  held?: Held;
  /** Under --steer: the socket it serves from, of its own generation or of the one whose crash it restarts. */
  socket?: GenerationSocket;
  status?: ExitStatus;
  /** Why baton sent it SIGKILL (its kill deadline, a second stop request), if it did. */
  killed?: string;
  /** Its descendants that left its process group: they get its signals one by one. */
  readonly escapees: Escapees;
  private readonly log: Logger;
  private killTimer?: NodeJS.Timeout;

  /** A process baton has just spawned, or one it adopts: a child baton had before it replaced its own program. */
  constructor(number: number, plan: Spawned | Adopted, log: Logger, worker = 0) {
    this.number = number;
    this.worker = worker;
    this.log = log;
    this.pid = plan.pid;
    // Read once, as it exists (baton's child: not reaped before baton waits for it), not at each record.
    this.starttime = (this.pid > 0 && startTime(this.pid)) || '';
    this.release = plan.release;
    this.escapees = new Escapees(number, worker, this.pid, log);
    if ('state' in plan) {
      this.spawnedAt = performance.now() - plan.ageMs;
      this.state = plan.state;
      if (plan.state === 'active' || plan.state === 'draining') this.activeSince = performance.now();
      this.exited = new Promise((resolve) => watchExit(plan.pid, (status) => this.finish(status, resolve)));
    } else {
      this.spawnedAt = plan.spawnedAt;
      this.exited = new Promise((resolve) => {
        // pid 0: the spawn failed (logged); it is a process that exited 127, as a shell says "not found"
        if (this.pid === 0) queueMicrotask(() => this.finish({ code: 127, signal: null }, resolve));
        else watchExit(this.pid, (status) => this.finish(status, resolve));
      });
    }
    track(this.pid || undefined, this.exited);
  }

  /**
   * Spawns `plan`: the generation once its process exists and its exec is done, or one that exited 127 after a
   * `spawn-error` line. baton's part is done when `issued` is called (before this returns), as the clone is
   * handed on; the rest is the child's start.
   */
  static async spawn(
    number: number,
    plan: SpawnPlan,
    log: Logger,
    worker = 0,
    issued: () => void = () => {},
  ): Promise<Generation> {
    const failed = (message: string) => log.event('spawn-error', { generation: number, message });
    let spawnedAt: number | undefined;
    const dispatched = () => {
      spawnedAt = performance.now(); // its own time starts: the clone is under way
      issued();
    };
    const pid = spawning(start(plan, failed, dispatched));
    if (spawnedAt === undefined) dispatched(); // nothing was handed on: the spawn failed before
    return new Generation(number, { pid: await pid, spawnedAt: spawnedAt!, release: plan.release }, log, worker);
  }

  get alive(): boolean {
    return this.status === undefined;
  }

  ms(): number {
    return Math.round(performance.now() - this.spawnedAt);
  }

  to(next: State): void {
    if (!NEXT[this.state].includes(next))
      throw new Error(`generation ${this.number}: illegal transition ${this.state} → ${next}`);
    this.state = next;
    if (next === 'active') this.activeSince ??= performance.now();
  }

  /**
   * Signals the whole process group, and each descendant that left it; true when the group was
   * there. A group that is already gone (or never was: pid 0) is not an error; pid 1 (whose
   * descendants are every process) is never signalled.
   */
  signal(sig: NodeJS.Signals): boolean {
    if (this.pid <= 1) return false;
    // Looked for first: the signal may end the leader, whose orphans are then harder to find.
    this.escapees.signal(sig, this.alive);
    return signalGroup(this.pid, sig);
  }

  /**
   * Its release's stop signal now, SIGKILL after its --kill-timeout; resolves when the process has exited. Each
   * generation is stopped as the configuration it was launched under says: a --config read since may differ.
   */
  stop(): Promise<ExitStatus> {
    const { stopSignal: sig, killTimeout } = this.release;
    if (this.alive && this.times.stop === undefined) {
      this.times.stop = this.ms();
      const signalling = performance.now();
      this.signal(sig);
      // stop_ms: baton's own time to signal the process group (and the descendants that left it).
      const stop_ms = Math.round((performance.now() - signalling) * 100) / 100;
      this.log.event('stop', {
        generation: this.number,
        pid: this.pid,
        signal: sig,
        kill_timeout: killTimeout,
        stop_ms,
      });
    }
    // An adopted generation may have had its stop signal from the previous program: the SIGKILL
    // deadline is kept from then on.
    if (this.alive && !this.killTimer) {
      const left = Math.max(0, killTimeout - (this.ms() - (this.times.stop ?? this.ms())));
      const reason = `did not exit within ${killTimeout}ms of ${sig}`;
      this.killTimer = setTimeout(() => this.kill(reason, 'kill-timeout'), left);
    }
    return this.exited;
  }

  kill(reason: string, cause: KillCause): Promise<ExitStatus> {
    if (this.alive) {
      this.killed ??= reason;
      this.log.event('kill', { generation: this.number, pid: this.pid, message: reason, cause });
      this.signal('SIGKILL');
    }
    return this.exited;
  }

  private finish(status: ExitStatus, resolve: (s: ExitStatus) => void): void {
    if (this.status) return;
    clearTimeout(this.killTimer);
    this.status = status;
    this.times.exit = this.ms();
    // baton's copy of a listener the generation bound itself goes with it (its fd number may be reused).
    if (this.held) closeFd(this.held.fd);
    // The leader is gone; whatever it left in its group belongs to this generation too.
    if (this.signal('SIGKILL'))
      this.log.event('kill', { generation: this.number, message: 'leftover processes of the group' });
    resolve(status);
  }
}
