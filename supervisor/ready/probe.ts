import { track } from '../children.js';
import { delay } from './delay.js';

const INTERVAL_MS = 100;

/** Runs `command` through the shell until it exits 0; it gets BATON_CHILD_PID and BATON_GENERATION. */
export async function probe(command: string, pid: number, generation: number, signal: AbortSignal): Promise<void> {
  const env = { BATON_CHILD_PID: String(pid), BATON_GENERATION: String(generation) };
  const { execa } = await import('execa'); // only probes and preflights need it: keep baton's RSS down
  while (!signal.aborted) {
    const run = execa(command, { shell: true, env, reject: false, stdio: 'ignore', cancelSignal: signal });
    track(run.pid, run);
    const r = await run;
    if (r.exitCode === 0) return;
    await delay(INTERVAL_MS, signal);
  }
  await new Promise<never>(() => {});
}
