import { constants, openSync, readFileSync, readlinkSync, writeSync } from 'node:fs';
import { setCloexec } from './fd.js';

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

/**
 * /proc/self/oom_score_adj, open for writing from baton's start. Once baton is not dumpable its /proc
 * files belong to root, and a non-root baton could no longer open it: the fd is carried across a
 * self-upgrade's execve (BATON_RESUME) for the same reason.
 */
let file: number | undefined;

export function oomScoreAdj(pid: number | 'self' = 'self'): number {
  return Number(readFileSync(`/proc/${pid}/oom_score_adj`, 'utf8'));
}

function write(value: number): void {
  writeSync(file!, String(value));
}

/** The fd a self-upgrade hands to the next program, if baton holds one. */
export function oomFile(): number | undefined {
  return file;
}

/** `carried` if it is this process's oom_score_adj (a self-upgrade's), else a new fd; undefined if neither. */
function openOomFile(carried?: number): number | undefined {
  try {
    if (carried !== undefined && readlinkSync(`/proc/self/fd/${carried}`) === `/proc/${process.pid}/oom_score_adj`) {
      setCloexec(carried, true); // a child holding it could raise baton's own value
      return carried;
    }
  } catch {
    // not open
  }
  try {
    return openSync('/proc/self/oom_score_adj', constants.O_WRONLY);
  } catch {
    return undefined; // no /proc, or not dumpable and not root
  }
}

/**
 * Protects baton from the OOM killer before its children: lowers its oom_score_adj as far as it may
 * (see TRIED). `before` is the value baton had before the program a self-upgrade replaced lowered it,
 * `carried` that program's fd of the file.
 */
export function protectFromOom(before?: number, carried?: number): void {
  file = openOomFile(carried);
  if (file === undefined) return; // baton and its children keep the value they have
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

/** Spawns under way (a spawn off baton's thread lasts until its child's exec): baton's value is raised meanwhile. */
let raised = 0;

function raise(): void {
  if (!lowered) return;
  if (raised === 0) write(lowered.children); // counted only once written: a failed write raised nothing
  raised++;
}

function lower(): void {
  if (!lowered || --raised > 0) return;
  try {
    write(lowered.own);
  } catch {
    // cannot happen: baton went this low before, with the same rights
  }
}

/**
 * Runs `spawn` (which forks and execs, synchronously or until its promise settles) with baton's value raised to
 * the children's, so that a child is born with it and never runs a line at baton's lowered one.
 */
export function withChildOomScore<T>(spawn: () => T): T {
  raise();
  let settles = false;
  try {
    const result = spawn();
    if (result instanceof Promise) {
      settles = true;
      return result.finally(lower) as T;
    }
    return result;
  } finally {
    if (!settles) lower();
  }
}
