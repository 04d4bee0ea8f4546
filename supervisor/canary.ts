import { describeExit } from './exit-status.js';
import type { Generation } from './generation.js';
import type { Failure } from './health.js';

/**
 * The canary window of a wave: its new workers are active and the old ones drain, not yet told to stop, for `ms`
 * (--drain). Resolves with why the new release failed (one of `gens` has exited, any code or signal, also at the
 * window's last moment; or failed its --health probe), or undefined once the window has passed. A stop of baton
 * ends the workers too: the caller tells that apart.
 */
export async function watchCanary(
  gens: Generation[],
  ms: number,
  nextFailure: (gen: Generation) => Promise<Failure>,
): Promise<string | undefined> {
  const name = (g: Generation) => `generation ${g.number}${gens.length > 1 ? ` (worker ${g.worker})` : ''}`;
  const after = (g: Generation) =>
    `${((performance.now() - (g.activeSince ?? performance.now())) / 1000).toFixed(1)} s after it became active`;
  let timer: NodeJS.Timeout | undefined;
  let sick: string | undefined;
  if (ms > 0) {
    const passed = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)));
    const failing = gens.map((g) => nextFailure(g).then((f) => `${name(g)} ${f.reason} ${after(g)}`));
    sick = await Promise.race([passed, ...gens.map((g) => g.exited.then(() => undefined)), ...failing]);
    clearTimeout(timer);
  }
  const ended = gens.find((g) => g.status !== undefined);
  return ended?.status ? `${name(ended)} ${describeExit(ended.status)} ${after(ended)}` : sick;
}
