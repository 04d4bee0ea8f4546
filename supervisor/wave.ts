import { watchCanary } from './canary.js';
import { type Config, MAX_WORKERS } from './config.js';
import { BatonError } from './errors.js';
import { describeExit } from './exit-status.js';
import type { Generation } from './generation.js';
import type { Health } from './health.js';
import type { Helpers } from './helpers.js';
import type { Launch } from './launch.js';
import type { Logger } from './log.js';
import { adoptConfig, planUpgrade, type Reread } from './reconfig.js';
import { type Release, resolveRelease } from './release.js';
import type { Retirement } from './retire.js';
import type { Slots } from './slots.js';
import { type History, preflight, type Rollback, type UpgradeResult } from './upgrade.js';

/** What a wave needs from the supervisor. */
export interface WaveParts {
  /** The running configuration: an upgrade under a changed --config updates what shapes a generation. */
  config: Config;
  /** With --config: the options read again, at each upgrade. */
  reread?: Reread;
  log: Logger;
  slots: Slots;
  retirement: Retirement;
  live: ReadonlySet<Generation>;
  /** Generation `number` in `slot`, run in `release`. */
  launch(number: number, slot: number, release: Release): Promise<Launch>;
  /** The next generation number (each launch of a new run takes one). */
  nextNumber(): number;
  /** Every upgrade's outcome goes here, and the count of failed ones. */
  history: History;
  /** --check and probes: killed when baton stops. */
  helpers: Helpers;
  /** --health: the canary window hears of each new worker's failures. */
  health: Health;
  stopping(): boolean;
}

/**
 * A process of a batch can be ready and then exit while the others are still starting: it must
 * not take a slot (nothing would ever notice the slot is empty). It counts as a failed launch.
 */
function diedWhileWaiting(results: Launch[]): Launch[] {
  return results.map((r) => {
    if (!r.gen || r.gen.alive) return r;
    r.gen.to('failed');
    return { reason: `${describeExit(r.gen.status!)} right after it was ready` };
  });
}

/** Launches generation `number` in each of `slots` at once; a process that died while the others started failed. */
export async function launchAll(p: WaveParts, number: number, slots: number[], release: Release): Promise<Launch[]> {
  return diedWhileWaiting(await Promise.all(slots.map((slot) => p.launch(number, slot, release))));
}

/**
 * Generation 1 (or the first after a takeover) in every slot at once. Returns the error that
 * stopped it, after discarding the workers that did start; undefined when every slot is active.
 */
export async function runFirst(p: WaveParts): Promise<BatonError | undefined> {
  const slots = Array.from({ length: p.slots.length }, (_, slot) => slot);
  const release = resolveRelease(p.config);
  if ('reason' in release) return new BatonError('ERR_BATON_START', release.reason, release.hint);
  const number = p.nextNumber();
  const results = await launchAll(p, number, slots, release);
  if (p.stopping()) return undefined;
  const failed = results.find((r) => !r.gen);
  if (!failed) {
    for (const [slot, r] of results.entries()) p.slots.activate(r.gen!, slot);
    return undefined;
  }
  for (const r of results) if (r.gen) discardReady(p, r.gen, 'another worker failed');
  const hint = failed.hint ?? 'run the command by hand to see why it does not start, or raise --ready-timeout';
  return new BatonError('ERR_BATON_START', `generation ${number} failed: ${failed.reason}`, hint, {
    generation: number,
  });
}

/** A worker that was ready (and may already serve) but is not wanted after all: it is stopped like an old one. */
export function discardReady(p: Pick<WaveParts, 'log'>, gen: Generation, reason: string): void {
  gen.to('failed');
  p.log.event('failed', { generation: gen.number, worker: gen.worker, pid: gen.pid, message: reason });
  void gen.stop();
}

interface Switch {
  slot: number;
  old?: Generation;
  gen: Generation;
}

/**
 * One upgrade: a rolling wave over the worker slots, --surge at a time. Each new worker must be
 * ready before the next batch starts; the old workers it replaces keep their process (draining)
 * until the whole wave has succeeded, so a failure gives every slot back to them. Undefined when
 * baton began to stop meanwhile. With --config, the wave runs under the options read now, and they
 * become the running ones once it succeeds (a new --workers count too).
 */
export async function runWave(p: WaveParts): Promise<UpgradeResult | undefined> {
  const { log, slots } = p;
  const began = performance.now();
  const requestedAt = new Date().toISOString();
  const done = (r: Omit<UpgradeResult, 'requestedAt' | 'ms'>): UpgradeResult => {
    const serving = slots.newest;
    const result = { ...r, requestedAt, ms: Math.round(performance.now() - began), ...(serving ? { serving } : {}) };
    p.history.add(result);
    return result;
  };
  const [servingBefore, lastBefore] = [slots.newest, slots.lastActive];
  const plan = planUpgrade(p.config, p.reread);
  if ('reason' in plan) {
    log.event('upgrade-refused', { message: plan.reason, hint: plan.hint, serving: servingBefore });
    return done({ ok: false, generation: 0, reason: plan.reason, hint: plan.hint });
  }
  const { config, release, changes } = plan;
  if (changes.length > 0) log.event('config-changed', { message: changes.join('; ') });
  const changed = changes.length > 0 ? { changes } : {};
  if (config.check && servingBefore) {
    const failed = await preflight(p.helpers, config.check, config.checkTimeout, release);
    if (p.stopping()) return undefined;
    if (failed) {
      log.event('preflight-failed', { message: failed, serving: servingBefore, failures: p.history.fail() });
      return done({ ok: false, generation: 0, reason: failed, ...changed });
    }
  }
  const number = p.nextNumber();
  const switched: Switch[] = [];
  // A changed --workers count is this wave's; SIGTTIN/SIGTTOU's count stands while the file's does not change.
  const [before, workers] = [slots.length, config.workers === p.config.workers ? slots.length : config.workers];
  if (workers > before) slots.resize(workers);
  const surge = servingBefore ? config.surge : workers;
  const upgrade = () => ({ ms: Math.round(performance.now() - began), drain: config.drain });
  const rollBack = (failed: { reason: string; hint?: string }, phase: Rollback) => {
    giveBack(p, switched, before);
    if (workers > before) slots.resize(before);
    // A slot whose old worker was gone meanwhile restarts in the release that served before, never this one.
    if (slots.lastActive?.number === number) slots.lastActive = lastBefore;
    if (servingBefore) {
      const fields = { generation: number, message: failed.reason, hint: failed.hint, phase };
      log.event('rollback', { ...fields, serving: slots.newest, failures: p.history.fail() });
    }
    return done({ ok: false, generation: number, reason: failed.reason, rollback: phase, ...changed });
  };
  let readyMs = 0;
  for (let first = 0; first < workers; first += surge) {
    const batch = Array.from({ length: Math.min(surge, workers - first) }, (_, k) => first + k);
    const results = await launchAll(p, number, batch, release);
    if (p.stopping()) return undefined;
    const failed = results.find((r) => !r.gen);
    if (failed) {
      for (const r of results) if (r.gen) discardReady(p, r.gen, 'another worker of the wave failed');
      const result = rollBack(failed, 'before-ready');
      for (const slot of batch) if (slot < before && !slots.at(slot)) slots.crashed(slot, failed.reason);
      return result;
    }
    for (const [k, slot] of batch.entries()) {
      const gen = results[k]!.gen!;
      readyMs = Math.max(readyMs, gen.times.ready ?? 0);
      switched.push({ slot, gen, old: slots.activate(gen, slot, upgrade()) });
    }
  }
  log.event('upgraded', { generation: number, workers, upgrade: upgrade().ms, canary: config.drain });
  const fresh = switched.map(({ gen }) => gen);
  for (const gen of fresh) slots.onTrial.add(gen);
  const died = await watchCanary(fresh, config.drain, (gen) => p.health.nextFailure(gen));
  for (const gen of fresh) slots.onTrial.delete(gen);
  if (p.stopping()) return undefined;
  if (died) return rollBack({ reason: died }, 'canary');
  adoptConfig(p.config, config);
  // The old workers have drained through the window: each is stopped now (in port mode once its queue is empty).
  const replaced = switched.flatMap(({ old }) => (old?.state === 'draining' ? [old] : []));
  retire(p, [...replaced, ...dropSlots(p, slots.resize(workers))], 0);
  p.retirement.cap(p.live);
  return done({ ok: true, generation: number, readyMs, ...changed });
}

/**
 * A crash restart: a new process (a new generation number) in one empty slot, in the release that
 * serves (never one a link points to meanwhile: only an upgrade moves to another).
 */
export async function refill(p: WaveParts, slot: number): Promise<void> {
  const release = p.slots.lastActive?.release ?? resolveRelease(p.config);
  if ('reason' in release) return p.slots.crashed(slot, release.reason);
  const [{ gen, reason }] = await launchAll(p, p.nextNumber(), [slot], release);
  if (p.stopping()) return;
  if (!gen) return p.slots.crashed(slot, reason);
  if (slot >= p.slots.length || p.slots.at(slot)) return discardReady(p, gen, 'the slot is no longer empty');
  p.slots.activate(gen, slot);
}

/** SIGTTIN/SIGTTOU: the processes of removed slots drain like a retired wave; never more than MAX_WORKERS. */
export function rescale(p: WaveParts, workers: number): void {
  if (workers > MAX_WORKERS) {
    const message = `SIGTTIN beyond ${MAX_WORKERS} workers ignored: that is the most (nginx's limit too)`;
    p.log.event('warning', { message, workers: p.slots.length });
    if (p.slots.length >= MAX_WORKERS) return;
  }
  for (const gen of dropSlots(p, p.slots.resize(Math.min(workers, MAX_WORKERS)))) retire(p, [gen]);
  p.log.event('scale', { workers: p.slots.length });
}

/** The processes of slots removed by a resize drain. */
function dropSlots(p: WaveParts, removed: Array<[number, Generation]>): Generation[] {
  return removed.map(([worker, gen]) => {
    gen.to('draining');
    p.log.event('draining', { generation: gen.number, worker, pid: gen.pid, drain: p.config.drain });
    return gen;
  });
}

/** `gens` are retired together: each is stopped after `drain` ms (--drain unless said). */
function retire(p: WaveParts, gens: Generation[], drain?: number): void {
  p.retirement.retire(gens);
  for (const gen of gens) p.retirement.drainLater(gen, drain);
}

/**
 * A failed wave: the old workers get their slots back (in port mode the steering slot too), then its new workers
 * stop as a drained old one does (in port mode once their own queue is empty); the slots from `before` on go.
 */
function giveBack(p: WaveParts, switched: Switch[], before: number): void {
  const { slots } = p;
  for (const { slot, old, gen } of switched.reverse()) {
    if (old?.alive && old.state === 'draining') {
      p.retirement.forget(old);
      slots.regain(slot, old);
    } else {
      if (slots.at(slot) === gen) slots.vacate(slot);
      if (slot < before) slots.crashed(slot, 'its old worker was gone when the wave failed');
    }
    if (gen.state === 'active') {
      gen.to('draining');
      p.retirement.drainLater(gen, 0);
    }
  }
}
