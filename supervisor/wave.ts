import { MAX_WORKERS } from './config.js';
import { BatonError } from './errors.js';
import { describeExit } from './exit-status.js';
import type { GenerationSocket } from './gen-socket.js';
import type { Generation } from './generation.js';
import type { Launch } from './launch.js';
import { planUpgrade } from './reconfig.js';
import { type Release, resolveRelease } from './release.js';
import { type Clocks, Steps } from './steps.js';
import { dropSlots, monotonicMs, record, retire, rollBack, settle, type Trial } from './trial.js';
import { preflight, type UpgradeResult } from './upgrade.js';
import type { WaveParts } from './wave-parts.js';

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

/**
 * Launches generation `number` in each of `slots` at once, serving from `socket` (under --steer); a process that
 * died while the others started failed.
 */
export async function launchAll(
  p: WaveParts,
  number: number,
  slots: number[],
  release: Release,
  socket?: GenerationSocket,
): Promise<Launch[]> {
  return diedWhileWaiting(await Promise.all(slots.map((slot) => p.launch(number, slot, release, socket))));
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
  const results = await launchAll(p, number, slots, release, p.sockets?.create());
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

/** Of a batch's launches, the one that ended last (the wall clock's): its span or moment is the batch's. */
const latest = (all: Array<Clocks | undefined>): Clocks =>
  all.reduce<Clocks>((a, b) => (b && b.wall > a.wall ? b : a), { wall: 0, cpu: 0 });

/**
 * One upgrade: a rolling wave over the worker slots, --surge at a time. Each new worker must be
 * ready before the next batch starts; the old workers it replaces keep their process (draining)
 * until the whole wave has succeeded, so a failure gives every slot back to them. Undefined when
 * baton began to stop meanwhile; the trial when `carry` aborted its canary window (a self-upgrade). With
 * --config, the wave runs under the options read now, and they become the running ones once it succeeds.
 */
export async function runWave(p: WaveParts, carry?: AbortSignal): Promise<UpgradeResult | Trial | undefined> {
  const { log, slots } = p;
  const steps = new Steps();
  const since = { requestedAt: new Date().toISOString(), began: monotonicMs(), changes: [] as string[] };
  const servingBefore = slots.newest;
  const plan = await planUpgrade(p.config, p.reread);
  if (p.stopping()) return undefined; // the options may have been read in a process of their own meanwhile
  if ('reason' in plan) {
    log.event('upgrade-refused', { message: plan.reason, hint: plan.hint, serving: servingBefore });
    return record(p, since, { ok: false, generation: 0, reason: plan.reason, hint: plan.hint, refused: 'plan' });
  }
  const { config, release, changes } = plan;
  since.changes = changes;
  if (changes.length > 0) log.event('config-changed', { message: changes.join('; ') });
  steps.add('plan');
  if (config.check && servingBefore) {
    const failed = await preflight(p.helpers, config.check, config.checkTimeout, release);
    if (p.stopping()) return undefined;
    if (failed) {
      log.event('preflight-failed', { message: failed, serving: servingBefore, failures: p.history.fail() });
      return record(p, since, { ok: false, generation: 0, reason: failed, refused: 'check' });
    }
  }
  steps.skip(); // the preflight is the --check command's time
  // A changed --workers count is this wave's; SIGTTIN/SIGTTOU's count stands while the file's does not change.
  const [before, workers] = [slots.length, config.workers === p.config.workers ? slots.length : config.workers];
  const trial: Trial = {
    ...since,
    ...{ number: p.nextNumber(), switched: [], before, workers, lastBefore: slots.lastActive },
    ...{ servedBefore: servingBefore !== undefined, readyMs: 0, config },
  };
  if (workers > before) slots.resize(workers);
  const surge = servingBefore ? config.surge : workers;
  // Every worker of the generation serves from its socket; the steering slot takes it at the first activation.
  const socket = p.sockets?.create();
  steps.add('plan');
  const upgrade = () => ({ ms: Math.round(steps.elapsed()), drain: config.drain });
  let ms = 0;
  for (let first = 0; first < workers; first += surge) {
    const batch = Array.from({ length: Math.min(surge, workers - first) }, (_, k) => first + k);
    const results = await launchAll(p, trial.number, batch, release, socket);
    if (p.stopping()) return undefined;
    // From the plan (or the batch before) until baton's part of the batch's last spawn was done, less the waits of
    // its launches for the spawns before theirs; the clones and execs (the children's start, off baton's thread)
    // and the record beside them are reported, not baton's own.
    steps.until('spawn', latest(results.map((r) => r.issued)));
    for (const r of results) if (r.waited) steps.move('spawn', 'exec', r.waited);
    steps.add('exec', latest(results.map((r) => r.exec)));
    steps.add('record', latest(results.map((r) => r.record)));
    const failed = results.find((r) => !r.gen);
    if (failed) {
      for (const r of results) if (r.gen) discardReady(p, r.gen, 'another worker of the wave failed');
      const result = rollBack(p, trial, failed.reason, 'before-ready', failed.hint);
      for (const slot of batch) if (slot < before && !slots.at(slot)) slots.crashed(slot, failed.reason);
      return result;
    }
    steps.skip(latest(results.map((r) => r.ready))); // the children's start, until the batch was ready
    for (const [k, slot] of batch.entries()) {
      const gen = results[k]!.gen!;
      trial.readyMs = Math.max(trial.readyMs, gen.times.ready ?? 0);
      trial.switched.push({ slot, gen, old: slots.activate(gen, slot, upgrade()) });
      steps.add('switch', { wall: slots.lastSwitchMs, cpu: 0 });
    }
    ms = steps.close('activate');
  }
  const done = { generation: trial.number, workers, upgrade: Math.round(ms), canary: config.drain };
  log.event('upgraded', { ...done, ...steps.fields() });
  trial.endsAt = monotonicMs() + config.drain;
  return settle(p, trial, carry);
}

/**
 * A crash restart: a new process (a new generation number) in one empty slot, in the release that
 * serves (never one a link points to meanwhile: only an upgrade moves to another).
 */
export async function refill(p: WaveParts, slot: number): Promise<void> {
  const last = p.slots.lastActive;
  const release = last?.release ?? resolveRelease(p.config);
  if ('reason' in release) return p.slots.crashed(slot, release.reason);
  // Under --steer it serves from the socket in the steering slot, where connections waited meanwhile.
  const socket = last?.socket ?? p.sockets?.create();
  const [{ gen, reason }] = await launchAll(p, p.nextNumber(), [slot], release, socket);
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
