import type { StdioOptions } from 'node:child_process';
import type { Listener } from '../listener.js';
import type { ReadySpec } from '../ready/index.js';

export type HandoverName = 'pidfd' | 'inherit' | 'port';

export interface Plan {
  file: string;
  args: string[];
  env: Record<string, string>;
  stdio: StdioOptions;
  /** port handover: the port the generation is asked to bind ($PORT). */
  port?: number;
}

/** How a generation gets its listeners. */
export interface Handover {
  readonly name: HandoverName;
  readonly defaultReady: ReadySpec;
  /** Environment, stdio and argv that carry the listeners to the child. */
  plan(command: string[], listeners: Listener[]): Plan;
  /**
   * Resolves when the generation rooted at `pid` holds its listeners (the `grab` readiness), with
   * the fds baton pulled from it (port handover) or none. Absent where baton cannot see it.
   */
  watch?(pid: number, plan: Plan, listeners: Listener[], signal: AbortSignal): Promise<number[]>;
  /** Around the handover window of the child `pid` (Yama's PR_SET_PTRACER for pidfd). */
  open(pid: number): void;
  close(): void;
}
