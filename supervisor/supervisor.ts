import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adoptActivated } from './activation.js';
import { formatAddress } from './address.js';
import { backoff, type Config } from './config.js';
import { BatonError } from './errors.js';
import { describeExit, exitCode, Generation, type ExitStatus } from './generation.js';
import { socketsOf } from './grab-watch.js';
import { handovers, type Handover } from './handover/index.js';
import { closeListeners, openListeners, type Listener } from './listener.js';
import type { Logger } from './log.js';
import { launch, type Launch, type LaunchContext } from './launch.js';
import { removePidFile, writePidFile } from './pidfile.js';
import { formatReady, type ReadySpec } from './ready/index.js';
import type { Status } from './status.js';
import { establishedInodes } from './sys/proc-net.js';
import { HISTORY, preflight, type UpgradeResult } from './upgrade.js';
import { SteeringPlane } from './steering/plane.js';
import { closeFd, setCloexec } from './sys/fd.js';
import { execSelf, type ResumeState } from './self-upgrade.js';

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

/** Moments the world outside (systemd) hears of. */
export interface Hooks {
  started?(gen: { number: number; pid: number }): void;
  reloading?(): void;
  upgraded?(result: UpgradeResult): void;
  stopping?(): void;
}

/**
 * Owns the listeners and runs generations of the command through one serialising upgrade loop:
 * at most one upgrade in flight, and requests arriving meanwhile coalesce into one follow-up.
 */
export class Supervisor {
  readonly listeners: Listener[];
  /** Upgrades that were rolled back. */
  failures = 0;
  readonly done: Promise<number>;
  private readonly config: Config;
  private readonly log: Logger;
  private readonly handover: Handover;
  private readonly ready: ReadySpec;
  private readonly runtimeDir: string;
  private readonly live = new Set<Generation>();
  private readonly drainTimers = new Set<NodeJS.Timeout>();
  private readonly plane?: SteeringPlane;
  /** Worker slots: the process serving in each (--workers). */
  private slots: Array<Generation | undefined>;
  /** Crashes in a row, per slot. */
  private crashes: number[];
  private readonly restartTimers = new Map<number, NodeJS.Timeout>();
  /** Slots whose restart is due. */
  private readonly refills = new Set<number>();
  private scaleBy = 0;
  private lastActive?: Generation;
  private next = 1;
  private upgrading = false;
  /** An upgrade was asked for and has not started yet (requests coalesce here). */
  private wanted = false;
  private stopping = false;
  private execing = false;
  private resolveDone!: (code: number) => void;
  private waiting: Array<(r: UpgradeResult) => void> = [];
  private readonly history: UpgradeResult[] = [];
  private readonly hooks: Hooks;
  private readonly startedAt: number = Date.now();
  private readonly resumed?: ResumeState;

  /** Opens listeners, runtime directory and pid file, all or none. */
  constructor(config: Config, log: Logger, hooks: Hooks = {}, resume?: ResumeState) {
    this.config = config;
    this.hooks = hooks;
    this.log = log;
    this.handover = handovers[config.handover];
    this.ready = config.ready;
    this.resumed = resume;
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    this.slots = new Array<Generation | undefined>(resume?.workers ?? config.workers).fill(undefined);
    this.crashes = resume?.crashes ?? this.slots.map(() => 0);
    if (resume) {
      this.listeners = resume.listeners;
      for (const l of this.listeners) setCloexec(l.fd, true);
      this.runtimeDir = resume.runtimeDir;
      this.startedAt = resume.startedAt;
      if (config.steer.length > 0) this.plane = new SteeringPlane(config, this.listeners, log, true);
      log.event('config', { handover: this.handover.name, ready: formatReady(this.ready), drain: config.drain, stop_signal: config.stopSignal, resumed: true });
      return;
    }
    const activated = adoptActivated(config.listen, (what) => log.event('warning', { message: `socket activation passed ${what}, which no --listen names; closed` }));
    this.listeners = openListeners(config.listen, config.backlog, (path) => log.event('stale-socket', { message: `removed stale unix socket ${path}` }), activated);
    try {
      // Root-owned: a --user child may reach its notify socket (0711) but never create files here.
      this.runtimeDir = mkdtempSync(join(tmpdir(), 'baton-'));
      if (config.user) chmodSync(this.runtimeDir, 0o711);
      if (config.pidFile) writePidFile(config.pidFile, (pid) => log.event('stale-pid-file', { message: `replaced pid file of dead pid ${pid}` }));
      if (config.steer.length > 0) this.plane = new SteeringPlane(config, this.listeners, log, false);
      this.next = this.plane?.firstGeneration ?? 1;
    } catch (err) {
      this.release();
      throw err;
    }
    for (const l of this.listeners) log.event('listening', { listener: formatAddress(l.address), name: l.name, fd: l.fd, ...(l.adopted ? { activated: true } : {}) });
    log.event('config', { handover: this.handover.name, ready: formatReady(this.ready), drain: config.drain, stop_signal: config.stopSignal });
  }

  /** Runs generation 1 in every worker slot until it is active; rejects (after cleaning up) if it never gets there. */
  async start(): Promise<void> {
    if (this.resumed) return this.adopt(this.resumed);
    this.upgrading = true;
    const number = this.next++;
    const results = diedWhileWaiting(await Promise.all(this.slots.map((_, slot) => launch(this.ctx, number, slot))));
    this.upgrading = false;
    if (this.stopping) return;
    const failed = results.find((r) => !r.gen);
    if (failed) {
      for (const r of results) if (r.gen) this.discardReady(r.gen, 'another worker failed');
      this.stopping = true;
      this.resolveDone(await this.shutdown());
      throw new BatonError('ERR_BATON_START', `generation ${number} failed: ${failed.reason}`, failed.hint ?? 'run the command by hand to see why it does not start, or raise --ready-timeout', { generation: number });
    }
    results.forEach((r, slot) => this.activate(r.gen!, slot));
    this.hooks.started?.(this.slots[0]!);
    this.plane?.retireOrphan().catch((err: Error) => this.log.event('warning', { message: `retiring the orphan: ${err.message}` }));
    void this.run();
  }

  /**
   * SIGHUP or `baton reload`: start a new generation; coalesced while one is in flight. Resolves
   * with the outcome of the upgrade that serves this request.
   */
  reload(source = 'SIGHUP'): Promise<UpgradeResult> {
    this.log.event('reload', { message: `upgrade requested by ${source}` });
    if (this.stopping) return Promise.resolve(this.refused('baton is stopping'));
    this.hooks.reloading?.();
    if (this.upgrading && !this.wanted) this.log.event('coalesced', { message: 'an upgrade is in flight; one more will follow' });
    this.wanted = true;
    const outcome = new Promise<UpgradeResult>((resolve) => this.waiting.push(resolve));
    void this.run();
    return outcome;
  }

  /** SIGTTIN/SIGTTOU: one worker more or fewer, without an upgrade. */
  scale(delta: 1 | -1): void {
    if (this.stopping) return;
    if (this.handover.name === 'port') {
      this.log.event('warning', { message: 'scaling needs a shared listener; --handover port runs one worker' });
      return;
    }
    this.scaleBy += delta;
    void this.run();
  }

  /** SIGTERM/SIGINT: stop every generation gracefully; a second call kills what is left at once. */
  stop(): void {
    if (this.stopping) {
      for (const g of this.live) void g.kill('second stop request');
      return;
    }
    this.stopping = true;
    for (const t of this.restartTimers.values()) clearTimeout(t);
    for (const t of this.drainTimers) clearTimeout(t);
    for (const w of this.waiting.splice(0)) w(this.refused('baton is stopping'));
    this.hooks.stopping?.();
    this.log.event('stopping', { generations: this.live.size });
    void this.shutdown().then(this.resolveDone);
  }

  /** For an exit baton did not plan: ask every generation to stop and remove what baton made, synchronously. */
  abandon(): void {
    for (const g of this.live) g.signal(this.config.stopSignal);
    this.release();
  }

  /** Undoes the constructor, for a baton that cannot start after all (nothing was spawned). */
  discard(): void {
    this.plane?.close();
    this.release();
  }

  /** What `baton status` shows. */
  status(): Status {
    // /proc/net/tcp lists every connection on the host (TIME_WAIT too): read it only when needed.
    const established = [...this.live].some((g) => g.state === 'draining') ? establishedInodes() : new Set<number>();
    return {
      pid: process.pid,
      name: this.config.name,
      uptimeMs: Date.now() - this.startedAt,
      handover: this.handover.name,
      workers: this.slots.length,
      listeners: this.listeners.map((l) => ({ name: l.name, address: formatAddress(l.address), fd: l.fd })),
      generations: [...this.live].map((g) => ({
        number: g.number,
        worker: g.worker,
        pid: g.pid,
        state: g.state,
        ageMs: g.ms(),
        readyMs: g.times.ready,
        // Connections still open in a draining generation: its sockets that are established TCP connections.
        connections: g.state === 'draining' ? [...socketsOf(g.pid)].filter((s) => established.has(Number(s.slice(8, -1)))).length : undefined,
      })),
      upgrades: [...this.history],
      failures: this.failures,
      memory: process.memoryUsage(),
      ...(this.plane ? { steering: this.plane.snapshot() } : {}),
    };
  }

  /** What launch() needs from the supervisor. */
  private get ctx(): LaunchContext {
    return {
      config: this.config,
      log: this.log,
      handover: this.handover,
      ready: this.ready,
      listeners: this.listeners,
      runtimeDir: this.runtimeDir,
      stopping: () => this.stopping,
      spawned: (gen) => {
        this.live.add(gen);
        void gen.exited.then((st) => this.onExit(gen, st));
      },
    };
  }

  /** The newest generation serving in any slot. */
  private get serving(): number | undefined {
    const numbers = this.slots.filter((g) => g !== undefined).map((g) => g!.number);
    return numbers.length ? Math.max(...numbers) : undefined;
  }

  private refused(reason: string): UpgradeResult {
    const serving = this.serving;
    return { ok: false, generation: 0, reason, requestedAt: new Date().toISOString(), ms: 0, ...(serving ? { serving } : {}) };
  }

  /** The one loop that starts processes: upgrades, crash restarts and scaling, one at a time. */
  private async run(): Promise<void> {
    if (this.stopping || this.upgrading) return;
    this.upgrading = true;
    try {
      while (!this.stopping && (this.wanted || this.scaleBy !== 0 || this.refills.size > 0)) {
        if (this.scaleBy !== 0) {
          this.applyScale();
        } else if (this.wanted) {
          this.wanted = false;
          const waiters = this.waiting.splice(0);
          let result: UpgradeResult | undefined;
          try {
            result = await this.wave();
          } finally {
            if (result) {
              this.history.push(result);
              if (this.history.length > HISTORY) this.history.shift();
              this.hooks.upgraded?.(result);
            }
            for (const w of waiters) w(result ?? this.refused(this.stopping ? 'baton is stopping' : 'the upgrade failed inside baton; see its log'));
          }
        } else {
          const slots = [...this.refills].filter((s) => s < this.slots.length && !this.slots[s]);
          this.refills.clear();
          await Promise.all(slots.map((slot) => this.restart(slot)));
        }
      }
    } catch (err) {
      this.log.event('warning', { message: `upgrade loop: ${(err as Error).message}` });
    } finally {
      this.upgrading = false;
    }
  }

  /**
   * One upgrade: a rolling wave over the worker slots, --surge at a time. Each new worker must be
   * ready before the next batch starts; the old workers it replaces keep their process (draining)
   * until the whole wave has succeeded, so a failure gives every slot back to them.
   */
  private async wave(): Promise<UpgradeResult | undefined> {
    const began = performance.now();
    const requestedAt = new Date().toISOString();
    const done = (r: Omit<UpgradeResult, 'requestedAt' | 'ms'>): UpgradeResult => {
      const serving = this.serving;
      return { ...r, requestedAt, ms: Math.round(performance.now() - began), ...(serving ? { serving } : {}) };
    };
    const servingBefore = this.serving;
    if (this.config.check && servingBefore) {
      const failed = await preflight(this.config.check, this.config.readyTimeout);
      if (this.stopping) return undefined;
      if (failed) {
        this.failures++;
        this.log.event('preflight-failed', { message: failed, serving: servingBefore, failures: this.failures });
        return done({ ok: false, generation: 0, reason: failed });
      }
    }
    const number = this.next++;
    const switched: Array<{ slot: number; old?: Generation; gen: Generation }> = [];
    const surge = servingBefore ? this.config.surge : this.slots.length;
    let readyMs = 0;
    for (let first = 0; first < this.slots.length; first += surge) {
      const batch = Array.from({ length: Math.min(surge, this.slots.length - first) }, (_, k) => first + k);
      const results = diedWhileWaiting(await Promise.all(batch.map((slot) => launch(this.ctx, number, slot))));
      if (this.stopping) return undefined;
      const failed = results.find((r) => !r.gen);
      if (failed) {
        for (const r of results) if (r.gen) this.discardReady(r.gen, 'another worker of the wave failed');
        this.giveBack(switched);
        if (servingBefore) {
          this.failures++;
          this.log.event('rollback', { generation: number, message: failed.reason, hint: failed.hint, serving: this.serving, failures: this.failures });
        }
        for (const slot of batch) if (!this.slots[slot]) this.crashed(slot, failed.reason);
        return done({ ok: false, generation: number, reason: failed.reason });
      }
      for (const [k, slot] of batch.entries()) {
        const gen = results[k]!.gen!;
        readyMs = Math.max(readyMs, gen.times.ready ?? 0);
        switched.push({ slot, old: this.slots[slot], gen });
        this.activate(gen, slot, Math.round(performance.now() - began));
      }
    }
    for (const { old } of switched) if (old?.state === 'draining') this.drainLater(old);
    this.capDraining();
    this.log.event('upgraded', { generation: number, workers: this.slots.length, upgrade: Math.round(performance.now() - began) });
    return done({ ok: true, generation: number, readyMs });
  }

  /** A failed wave: its new workers stop, and the old ones get their slots back. */
  private giveBack(switched: Array<{ slot: number; old?: Generation; gen: Generation }>): void {
    for (const { slot, old, gen } of switched.reverse()) {
      if (gen.state === 'active') {
        gen.to('draining');
        void gen.stop(this.config.stopSignal, this.config.killTimeout);
      }
      if (old?.alive && old.state === 'draining') {
        old.to('active');
        old.retiredIn = undefined;
        this.slots[slot] = old;
        this.lastActive = old;
        this.log.event('regained', { generation: old.number, worker: slot, pid: old.pid });
      } else {
        this.slots[slot] = undefined;
        this.crashed(slot, 'its old worker was gone when the wave failed');
      }
    }
  }

  /** A worker that was ready but is not wanted after all. */
  private discardReady(gen: Generation, reason: string): void {
    gen.to('failed');
    void gen.kill(reason);
  }

  /** A crash restart: a new process (a new generation number) in one empty slot. */
  private async restart(slot: number): Promise<void> {
    const number = this.next++;
    const [{ gen, reason }] = diedWhileWaiting([await launch(this.ctx, number, slot)]) as [Launch];
    if (this.stopping) return;
    if (!gen) return this.crashed(slot, reason);
    if (slot >= this.slots.length || this.slots[slot]) return this.discardReady(gen, 'the slot is no longer empty');
    this.activate(gen, slot);
  }

  private applyScale(): void {
    const target = Math.max(1, this.slots.length + this.scaleBy);
    this.scaleBy = 0;
    while (this.slots.length < target) {
      this.slots.push(undefined);
      this.crashes.push(0);
      this.refills.add(this.slots.length - 1);
    }
    while (this.slots.length > target) {
      const slot = this.slots.length - 1;
      clearTimeout(this.restartTimers.get(slot));
      this.restartTimers.delete(slot);
      this.refills.delete(slot);
      this.crashes.pop();
      const gen = this.slots.pop();
      if (gen) {
        gen.to('draining');
        gen.retiredIn = this.next - 0.5; // after every generation started so far, before the next
        this.log.event('draining', { generation: gen.number, worker: slot, pid: gen.pid, drain: this.config.drain });
        this.drainLater(gen);
      }
    }
    this.log.event('scale', { workers: this.slots.length });
  }

  /** `gen` takes `slot`; the worker it replaces drains (stopped by the caller once its wave is done). */
  private activate(gen: Generation, slot: number, upgradeMs?: number): void {
    const old = this.slots[slot];
    gen.to('active');
    this.slots[slot] = gen;
    this.lastActive = gen;
    clearTimeout(this.restartTimers.get(slot));
    this.restartTimers.delete(slot);
    this.plane?.activate(gen, gen.port);
    this.log.event('active', { generation: gen.number, worker: slot, pid: gen.pid, upgrade: upgradeMs });
    if (old) {
      old.to('draining');
      old.retiredIn = gen.number;
      this.log.event('draining', { generation: old.number, worker: slot, pid: old.pid, drain: this.config.drain });
    }
  }

  /** At most --max-draining old generations alive: the oldest beyond that are killed. */
  private capDraining(): void {
    const draining = [...this.live].filter((g) => g.state === 'draining');
    const waves = [...new Set(draining.map((g) => g.retiredIn ?? g.number))].sort((a, b) => a - b);
    const excess = new Set(waves.slice(0, Math.max(0, waves.length - this.config.maxDraining)));
    for (const g of draining) if (excess.has(g.retiredIn ?? g.number)) void g.kill(`more than --max-draining ${this.config.maxDraining} generations draining`);
  }

  /** After --drain, the stop signal; in port mode only once the old listener's queue is empty. */
  private drainLater(old: Generation): void {
    const t = setTimeout(() => {
      this.drainTimers.delete(t);
      // The queue can only be asked while the generation (and so baton's copy of its listener) lives.
      const queue = old.alive ? this.plane?.emptied(old.own[0], this.config.killTimeout, () => old.alive) : undefined;
      void Promise.resolve(queue)
        .catch(() => {})
        .then(() => {
          if (!this.stopping) void old.stop(this.config.stopSignal, this.config.killTimeout);
        });
    }, this.config.drain);
    this.drainTimers.add(t);
  }

  /**
   * SIGUSR2: replace baton's own program in place, carrying listeners and generations across.
   * Waits for an upgrade in flight; reload requests meanwhile are carried as one pending upgrade.
   */
  async selfUpgrade(beforeExec: () => void, afterFailure: () => void): Promise<void> {
    if (this.stopping || this.execing) return;
    this.execing = true;
    while (this.upgrading) await new Promise((r) => setTimeout(r, 20));
    if (this.stopping) return void (this.execing = false);
    this.upgrading = true;
    for (const t of this.drainTimers) clearTimeout(t);
    this.drainTimers.clear();
    for (const t of this.restartTimers.values()) clearTimeout(t);
    this.restartTimers.clear();
    const state: ResumeState = {
      listeners: this.listeners,
      runtimeDir: this.runtimeDir,
      next: this.next,
      failures: this.failures,
      crashes: this.crashes,
      workers: this.slots.length,
      pending: this.wanted || this.waiting.length > 0,
      startedAt: this.startedAt,
      history: this.history,
      ...(this.lastActive ? { lastActive: this.lastActive.pid } : {}),
      generations: [...this.live].map((g) => ({ number: g.number, worker: g.worker, pid: g.pid, state: g.state, ageMs: g.ms(), own: g.own, ...(g.port === undefined ? {} : { port: g.port }), times: g.times })),
    };
    this.log.event('self-upgrade', { message: `execve ${process.execPath} ${process.argv[1]}`, generations: state.generations.length });
    try {
      beforeExec();
      execSelf(state);
    } catch (err) {
      this.log.event('self-upgrade-failed', { message: (err as Error).message });
      afterFailure();
      this.resumeTimers(state.pending);
      this.upgrading = false;
      this.execing = false;
      void this.run();
    }
  }

  /** The resumed side of a self-upgrade: take over the generations the previous program ran. */
  private adopt(state: ResumeState): void {
    this.next = state.next;
    this.failures = state.failures;
    this.history.push(...state.history);
    for (const g of state.generations) {
      const gen = new Generation(g.number, { pid: g.pid, state: g.state, ageMs: g.ageMs }, this.log, g.worker);
      gen.own = g.own;
      for (const fd of g.own) setCloexec(fd, true);
      if (g.port !== undefined) gen.port = g.port;
      Object.assign(gen.times, g.times);
      this.live.add(gen);
      void gen.exited.then((s) => this.onExit(gen, s));
      if (g.state === 'active') this.slots[g.worker] = gen;
      if (g.pid === state.lastActive) this.lastActive = gen;
      if (g.times.stop !== undefined) void gen.stop(this.config.stopSignal, this.config.killTimeout);
    }
    this.log.event('resumed', { message: `took over ${state.generations.length} generation(s)`, serving: this.serving });
    this.resumeTimers(state.pending);
    void this.run();
  }

  /** After a self-upgrade (done or failed): drain timers again, empty slots restart, a pending upgrade runs. */
  private resumeTimers(pending: boolean): void {
    for (const g of this.live) if (g.state === 'draining') this.drainLater(g);
    this.slots.forEach((g, slot) => {
      if (!g) this.crashed(slot, 'no process was serving in this slot across the self-upgrade');
    });
    if (pending) this.wanted = true;
  }

  private onExit(gen: Generation, status: ExitStatus): void {
    this.live.delete(gen);
    for (const fd of gen.own) closeFd(fd);
    const { grab, ready, stop, exit } = gen.times;
    this.log.event('exit', { generation: gen.number, worker: gen.worker, pid: gen.pid, message: describeExit(status), code: exitCode(status), grab, ready, stop, exit });
    if (gen.state === 'active' || gen.state === 'draining') gen.to('exited');
    const slot = this.slots.indexOf(gen);
    if (slot < 0 || this.stopping) return;
    this.slots[slot] = undefined;
    if (performance.now() - (gen.activeSince ?? 0) >= backoff.stableAfter) this.crashes[slot] = 0;
    this.crashed(slot, `generation ${gen.number} ${describeExit(status)} while active`);
  }

  /** Slot `slot` has no process: restart it after the backoff of its crashes in a row. */
  private crashed(slot: number, reason: string): void {
    const n = (this.crashes[slot] = (this.crashes[slot] ?? 0) + 1);
    const delay = Math.min(backoff.max, Math.round(backoff.base * backoff.factor ** (n - 1)));
    this.log.event('restart', { worker: slot, message: reason, in: delay, crashes: n });
    if (n % backoff.loopReport === 0) this.log.event('crash-loop', { worker: slot, message: `worker ${slot} crashed ${n} times in a row; the other workers serve on`, crashes: n });
    clearTimeout(this.restartTimers.get(slot));
    this.restartTimers.set(
      slot,
      setTimeout(() => {
        this.restartTimers.delete(slot);
        this.refills.add(slot);
        void this.run();
      }, delay),
    );
  }

  private async shutdown(): Promise<number> {
    for (const t of this.restartTimers.values()) clearTimeout(t);
    for (const g of this.live) if (g.state === 'active') g.to('draining');
    await Promise.all([...this.live].map((g) => g.stop(this.config.stopSignal, this.config.killTimeout)));
    this.plane?.close();
    this.release();
    const code = this.lastActive?.status ? exitCode(this.lastActive.status) : 0;
    this.log.event('stopped', { code });
    return code;
  }

  /** Closes listeners and removes the runtime directory and pid file. */
  private release(): void {
    closeListeners(this.listeners);
    if (this.runtimeDir) rmSync(this.runtimeDir, { recursive: true, force: true });
    if (this.config.pidFile) removePidFile(this.config.pidFile);
  }
}
