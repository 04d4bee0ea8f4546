import { watchCanary } from './canary.js';
import type { Config } from './config.js';
import type { Generation } from './generation.js';
import { adoptConfig } from './reconfig.js';
import type { Rollback, UpgradeResult } from './upgrade.js';
import type { WaveParts } from './wave-parts.js';

/** A slot a wave switched: who serves there now (none, if it died across a self-upgrade) and who served before. */
export interface Switch {
  slot: number;
  old?: Generation;
  gen?: Generation;
}

/** On the monotonic clock: it runs on across baton's execve (performance.now() starts again). */
export const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6;

/**
 * One upgrade's wave from its first launch: what its rollback, its canary window and its success need. A
 * self-upgrade during the window carries it to the next program (ResumeState.canary).
 */
export interface Trial {
  number: number;
  switched: Switch[];
  /** The slot count before the wave, and the wave's. */
  before: number;
  workers: number;
  /** Who became active last before the wave: after a rollback a slot restarts in its release, never this one. */
  lastBefore?: Generation;
  servedBefore: boolean;
  requestedAt: string;
  /** When the wave began and when its canary window ends, monotonicMs(). */
  began: number;
  endsAt?: number;
  readyMs: number;
  changes: string[];
  /** The options read for this wave, the running ones once it succeeds (a resumed program read them at its start). */
  config?: Config;
  /** Why a new worker is gone already (it exited while baton's program was replaced). */
  lost?: string;
}

/** How an upgrade ended, recorded in the history; `since` is its request (the wave began then). */
export function record(
  p: Pick<WaveParts, 'slots' | 'history'>,
  since: Pick<Trial, 'requestedAt' | 'began' | 'changes'>,
  r: Pick<UpgradeResult, 'ok' | 'generation'> & Partial<UpgradeResult>,
): UpgradeResult {
  const serving = p.slots.newest;
  const changed = since.changes.length > 0 ? { changes: since.changes } : {};
  const ms = Math.round(monotonicMs() - since.began);
  const result = { ...r, ...changed, requestedAt: since.requestedAt, ms, ...(serving ? { serving } : {}) };
  p.history.add(result);
  return result;
}

/** The wave failed: the old workers get their slots back, its own stop; a rollback of `phase`. */
export function rollBack(p: WaveParts, trial: Trial, reason: string, phase: Rollback, hint?: string): UpgradeResult {
  const { slots } = p;
  giveBack(p, trial);
  if (trial.workers > trial.before) slots.resize(trial.before);
  if (slots.lastActive?.number === trial.number) slots.lastActive = trial.lastBefore;
  if (trial.servedBefore) {
    const fields = { generation: trial.number, message: reason, hint, phase };
    p.log.event('rollback', { ...fields, serving: slots.newest, failures: p.history.fail() });
  }
  return record(p, trial, { ok: false, generation: trial.number, reason, rollback: phase });
}

/**
 * The canary window, from now to `trial.endsAt`: a new worker that exits or fails --health rolls the wave back;
 * once it has passed the old workers are stopped and the wave's options run. Undefined when baton began to stop;
 * the trial itself when `carry` aborted it (a self-upgrade takes it on).
 */
export async function settle(
  p: WaveParts,
  trial: Trial,
  carry?: AbortSignal,
): Promise<UpgradeResult | Trial | undefined> {
  const fresh = trial.switched.flatMap(({ gen }) => (gen ? [gen] : []));
  for (const gen of fresh) p.slots.onTrial.add(gen);
  const left = (trial.endsAt ?? 0) - monotonicMs();
  const verdict = trial.lost
    ? { failed: trial.lost }
    : await watchCanary(fresh, left, (g) => p.health.nextFailure(g), carry);
  if ('carried' in verdict) return trial;
  for (const gen of fresh) p.slots.onTrial.delete(gen);
  if (p.stopping()) return undefined;
  if ('failed' in verdict) return rollBack(p, trial, verdict.failed, 'canary');
  if (trial.config) adoptConfig(p.config, trial.config);
  // The old workers have drained through the window: each is stopped now (in port mode once its queue is empty).
  const replaced = trial.switched.flatMap(({ old }) => (old?.state === 'draining' ? [old] : []));
  retire(p, [...replaced, ...dropSlots(p, p.slots.resize(trial.workers))], 0);
  p.retirement.cap(p.live);
  return record(p, trial, { ok: true, generation: trial.number, readyMs: trial.readyMs });
}

/** The processes of slots removed by a resize drain. */
export function dropSlots(p: WaveParts, removed: Array<[number, Generation]>): Generation[] {
  return removed.map(([worker, gen]) => {
    gen.to('draining');
    p.log.event('draining', { generation: gen.number, worker, pid: gen.pid, drain: p.config.drain });
    return gen;
  });
}

/** `gens` are retired together: each is stopped after `drain` ms (--drain unless said). */
export function retire(p: WaveParts, gens: Generation[], drain?: number): void {
  p.retirement.retire(gens);
  for (const gen of gens) p.retirement.drainLater(gen, drain);
}

/**
 * A failed wave: the old workers get their slots back (in port mode the steering slot too), then its new workers
 * stop (with a socket of their own once they hold no connection); the slots from `before` on go.
 */
function giveBack(p: WaveParts, trial: Trial): void {
  const { slots } = p;
  for (const { slot, old, gen } of [...trial.switched].reverse()) {
    if (old?.alive && old.state === 'draining') {
      p.retirement.forget(old);
      slots.regain(slot, old);
    } else {
      if (gen && slots.at(slot) === gen) slots.vacate(slot);
      if (slot < trial.before) slots.crashed(slot, 'its old worker was gone when the wave failed');
    }
    if (gen?.state === 'active') {
      gen.to('draining');
      p.retirement.dropFailed(gen);
    }
  }
}
