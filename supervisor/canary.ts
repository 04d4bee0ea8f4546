import { describeExit } from './exit-status.js';
import type { Generation } from './generation.js';
import type { Failure } from './health.js';

/** How a canary window ended: a new worker failed (why), the window passed, or a self-upgrade carries it on. */
export type Verdict = { failed: string } | { passed: true } | { carried: true };

/**
 * The canary window of a wave: its new workers are active and the old ones drain, not yet told to stop, for `ms`
 * (what is left of --drain). One of `gens` exits (any code or signal, also at the window's last moment) or fails its
 * --health probe: failed. `carry` aborted (a self-upgrade): carried, unless one has exited by then. A stop of baton
 * ends the workers too: the caller tells that apart.
 */
export async function watchCanary(
  gens: Generation[],
  ms: number,
  nextFailure: (gen: Generation) => Promise<Failure>,
  carry?: AbortSignal,
): Promise<Verdict> {
  const name = (g: Generation) => `generation ${g.number}${gens.length > 1 ? ` (worker ${g.worker})` : ''}`;
  const after = (g: Generation) =>
    `${((performance.now() - (g.activeSince ?? performance.now())) / 1000).toFixed(1)} s after it became active`;
  let timer: NodeJS.Timeout | undefined;
  let outcome: Verdict = { passed: true };
  if (ms > 0) {
    // A timer counts from the event loop's cached clock and may fire a little before `ms` have passed on the
    // monotonic one (more so on a busy loop): it is armed again for what is left.
    const end = performance.now() + ms;
    const passed = new Promise<Verdict>((resolve) => {
      const wait = () => {
        const left = end - performance.now();
        timer = left > 0 ? setTimeout(wait, Math.ceil(left)) : undefined;
        if (left <= 0) resolve({ passed: true });
      };
      timer = setTimeout(wait, ms);
    });
    const carried = new Promise<Verdict>((resolve) => {
      if (carry?.aborted) resolve({ carried: true });
      carry?.addEventListener('abort', () => resolve({ carried: true }), { once: true });
    });
    const failing = gens.map((g) => nextFailure(g).then((f) => ({ failed: `${name(g)} ${f.reason} ${after(g)}` })));
    // An exit ends the race; the check below names it.
    const ending = gens.map((g) => g.exited.then((): Verdict => ({ passed: true })));
    outcome = await Promise.race([passed, carried, ...ending, ...failing]);
    clearTimeout(timer);
  }
  const ended = gens.find((g) => g.status !== undefined);
  return ended?.status ? { failed: `${name(ended)} ${describeExit(ended.status)} ${after(ended)}` } : outcome;
}
