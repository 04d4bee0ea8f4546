import type { Helpers } from '../helpers.js';
import { delay } from './delay.js';

const INTERVAL_MS = 100;

/**
 * Runs `command` through the shell until it exits 0; it gets BATON_CHILD_PID and BATON_GENERATION. A probe
 * still running when `signal` aborts (ready, failed, timed out, exited) is killed with its process group.
 */
export async function probe(
  helpers: Helpers,
  command: string,
  pid: number,
  generation: number,
  signal: AbortSignal,
): Promise<void> {
  const env = { BATON_CHILD_PID: String(pid), BATON_GENERATION: String(generation) };
  while (!signal.aborted) {
    const r = await helpers.run('probe', command, { env, signal, generation });
    if (r.code === 0 && !signal.aborted) return;
    await delay(INTERVAL_MS, signal);
  }
  await new Promise<never>(() => {});
}
