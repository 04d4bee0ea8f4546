import { readFileSync, writeFileSync } from 'node:fs';

/**
 * baton's own oom_score_adj. Not -1000, which would make baton unkillable even when baton itself is
 * what eats the memory: at -900 the kernel takes 90% of RAM+swap off baton's score, so a generation
 * (or anything else) goes first unless baton alone holds nearly all of the memory.
 */
export const BATON_OOM_SCORE_ADJ = -900;

/**
 * What baton tries, lowest first. Below the lowest value a privileged process gave it (0 unless, e.g.,
 * systemd's OOMScoreAdjust= did) only CAP_SYS_RESOURCE may go: without it, a baton started higher
 * goes back to 0, one started at 0 or lower stays.
 */
const TRIED = [BATON_OOM_SCORE_ADJ, 0];

/** baton's value and its children's, once baton lowered its own; undefined while it is unchanged. */
let lowered: { own: number; children: number } | undefined;

export function oomScoreAdj(pid: number | 'self' = 'self'): number {
  return Number(readFileSync(`/proc/${pid}/oom_score_adj`, 'utf8'));
}

function write(value: number): void {
  writeFileSync('/proc/self/oom_score_adj', String(value));
}

/**
 * Protects baton from the OOM killer before its children: lowers its oom_score_adj as far as it may
 * (see TRIED). `before` is the value baton had before the program a self-upgrade replaced lowered it.
 */
export function protectFromOom(before?: number): void {
  try {
    const children = before ?? oomScoreAdj();
    for (const value of TRIED.filter((v) => v < oomScoreAdj())) {
      try {
        write(value);
        break;
      } catch {
        // EACCES: not allowed this low
      }
    }
    const own = oomScoreAdj();
    lowered = own < children ? { own, children } : undefined;
  } catch {
    // no /proc: baton and its children keep the value they have
  }
}

/** The value protectFromOom() gives children, for the program a self-upgrade execs; undefined: baton's own. */
export function childOomScore(): number | undefined {
  return lowered?.children;
}

/**
 * Runs `spawn` (which forks and execs synchronously) with baton's value raised to the children's,
 * so that a child is born with it and never runs a line at baton's lowered one.
 */
export function withChildOomScore<T>(spawn: () => T): T {
  if (!lowered) return spawn();
  const { own, children } = lowered;
  write(children);
  try {
    return spawn();
  } finally {
    try {
      write(own);
    } catch {
      // cannot happen: baton went this low before, with the same rights
    }
  }
}
