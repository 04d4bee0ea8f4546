import type { Listener } from '../listener.js';
import type { ReadySpec } from '../ready/index.js';
import type { Stdio } from '../sys/spawn.js';

export type HandoverName = 'pidfd' | 'inherit' | 'port';

export interface Plan {
  file: string;
  args: string[];
  env: Record<string, string>;
  stdio: Stdio[];
  /** port handover: the port the generation is asked to bind ($PORT). */
  port?: number;
}

/** baton's copy of a listener a generation bound itself (port handover), and its port. */
export interface Held {
  fd: number;
  port: number;
}

/** What a pulling generation takes its listeners from: `_PID`, and `_FD` in listener order. */
export interface Source {
  readonly pid: number;
  readonly fds: number[];
  /** Resolves once generations may pull from it. */
  ready(): Promise<void>;
  /** Under Yama scope 1: lets `pid` (0: nobody) attach to the source. */
  nameTracer(pid: number): void;
}

/** One launch's handover, from spawn until the generation is ready or failed. */
export interface Session {
  /**
   * Resolves when the generation holds its listener (the `grab` readiness), with baton's copy of it
   * where the generation bound its own. Absent where baton cannot see it.
   */
  readonly watch?: Promise<Held | undefined>;
  /** The launch is over (ready or failed). */
  end?(): void;
}

/** How a generation gets its listeners. */
export interface Handover {
  readonly name: HandoverName;
  readonly defaultReady: ReadySpec;
  /** Generations serve from baton's listeners, so several may at once; false: each binds its own. */
  readonly sharesListener: boolean;
  /** baton sees when a generation holds its listener: the `grab` readiness works. */
  readonly grabs: boolean;
  /** The generation pulls its listeners out of a `Source` (pidfd_getfd): it needs ptrace rights over it. */
  readonly pulls: boolean;
  /** Environment, stdio and argv that carry the listeners to the child. */
  plan(command: string[], listeners: Listener[], source: Source): Plan;
  /** The handover to the child `pid`, spawned from `plan`; `signal` aborts once the launch is over. */
  begin(pid: number, plan: Plan, listeners: Listener[], signal: AbortSignal, source: Source): Session;
}
