import type { StdioOptions } from 'node:child_process';
import type { Listener } from '../listener.js';
import type { ReadySpec } from '../ready/index.js';
import { inherit } from './inherit.js';
import { pidfd } from './pidfd.js';

export type HandoverName = 'pidfd' | 'inherit';

/** How a generation gets its listeners. */
export interface Handover {
  readonly name: HandoverName;
  readonly defaultReady: ReadySpec;
  /** True when baton can watch the child take its listeners (the `grab` readiness). */
  readonly grabs: boolean;
  /** Environment, stdio and argv that carry the listeners to the child. */
  plan(command: string[], listeners: Listener[]): { file: string; args: string[]; env: Record<string, string>; stdio: StdioOptions };
  /** Around the handover window of the child `pid` (Yama's PR_SET_PTRACER for pidfd). */
  open(pid: number): void;
  close(): void;
}

export const handovers: Record<HandoverName, Handover> = { pidfd, inherit };

