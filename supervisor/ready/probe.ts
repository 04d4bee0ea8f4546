import type { Helpers } from '../helpers.js';
import { delay } from './delay.js';

/** What a probe runs for: the generation's process, and the launch's end. */
export interface ProbeContext {
  pid: number;
  generation: number;
  worker: number;
  /** The generation's release (release.ts): probes run in its directory, with its env files' variables. */
  release: { dir: string; env: Record<string, string> };
  signal: AbortSignal;
  /** Runs probes (killed when baton stops). */
  helpers: Helpers;
}

const INTERVAL_MS = 100;

/** What a probe of a process gets (readiness, --health): its release's variables, and which process it is for. */
export function probeEnv(o: Pick<ProbeContext, 'pid' | 'generation' | 'worker' | 'release'>): Record<string, string> {
  const ids = {
    BATON_CHILD_PID: String(o.pid),
    BATON_GENERATION: String(o.generation),
    BATON_WORKER: String(o.worker),
  };
  return { ...o.release.env, ...ids };
}

/**
 * Runs `command` through the shell, in the generation's directory, until it exits 0; it gets BATON_CHILD_PID,
 * BATON_GENERATION and BATON_WORKER. A probe still running when the launch's signal aborts (ready, failed, timed out,
 * exited) is killed with its process group.
 */
export async function probe(ctx: ProbeContext, command: string): Promise<void> {
  const { helpers, generation, signal, release } = ctx;
  const env = probeEnv(ctx);
  while (!signal.aborted) {
    const r = await helpers.run('probe', command, { env, signal, generation, cwd: release.dir });
    if (r.code === 0 && !signal.aborted) return;
    await delay(INTERVAL_MS, signal);
  }
  await new Promise<never>(() => {});
}
