import { track } from '../children.js';
import type { ReadyContext } from './index.js';
import { delay } from './delay.js';
import { withChildOomScore } from '../sys/oom.js';

const INTERVAL_MS = 100;

/** Runs `command` through the shell until it exits 0; it gets BATON_CHILD_PID and BATON_GENERATION. */
export async function probe(command: string, ctx: ReadyContext): Promise<void> {
  const env = { BATON_CHILD_PID: String(ctx.pid), BATON_GENERATION: String(ctx.generation) };
  const { execa } = await import('execa'); // only probes and preflights need it: keep baton's RSS down
  while (!ctx.signal.aborted) {
    const options = { shell: true, env, reject: false, stdio: 'ignore', cancelSignal: ctx.signal } as const;
    const run = withChildOomScore(() => execa(command, options));
    track(run.pid, run);
    const r = await run;
    if (r.exitCode === 0) return;
    await delay(INTERVAL_MS, ctx.signal);
  }
  await new Promise<never>(() => {});
}
