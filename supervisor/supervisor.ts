import type { Config } from './config.js';
import { BatonError } from './errors.js';
import { describeExit, exitCode, type ExitStatus, type Generation } from './generation.js';
import { handovers, type Handover } from './handover/index.js';
import type { Listener } from './listener.js';
import type { Logger } from './log.js';
import { launch } from './launch.js';
import { formatReady } from './ready/index.js';
import { Resources } from './resources.js';
import { Retirement } from './retire.js';
import { adopt, capture, type ResumeState } from './self-upgrade.js';
import { Slots } from './slots.js';
import { buildStatus, type Status } from './status.js';
import { closeFd } from './sys/fd.js';
import { History, type UpgradeResult } from './upgrade.js';
import { discardReady, launchAll, runFirst, runWave, type WaveParts } from './wave.js';

/** Moments the world outside (systemd) hears of. */
export interface Hooks {
  started?(gen: { number: number; pid: number }): void;
  reloading?(): void;
  upgraded?(result: UpgradeResult): void;
  stopping?(): void;
}

type Waiter = (r: UpgradeResult) => void;

/**
 * Owns the listeners and runs generations of the command through one serialising upgrade loop:
 * at most one upgrade in flight, and requests arriving meanwhile coalesce into one follow-up.
 */
export class Supervisor {
  readonly done: Promise<number>;
  private readonly config: Config;
  private readonly log: Logger;
  private readonly hooks: Hooks;
  private readonly handover: Handover;
  private readonly resources: Resources;
  private readonly slots: Slots;
  private readonly retirement: Retirement;
  private readonly history: History;
  private readonly live = new Set<Generation>();
  private readonly parts: WaveParts;
  private readonly resumed?: ResumeState;
  private failed = 0;
  private next = 1;
  /** The loop is running (an upgrade, a restart or a scaling). */
  private busy = false;
  /** An upgrade is wanted and has not started yet: the requests waiting for it (they coalesce here). */
  private pending?: Waiter[];
  private scaleBy = 0;
  private stopping = false;
  private execing = false;
  private idleWaiters: Array<() => void> = [];
  private resolveDone!: (code: number) => void;

  /** Opens listeners, runtime directory and pid file, all or none. */
  constructor(config: Config, log: Logger, hooks: Hooks = {}, resume?: ResumeState) {
    this.config = config;
    this.log = log;
    this.hooks = hooks;
    this.handover = handovers[config.handover];
    this.resumed = resume;
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    this.resources = Resources.open(config, log, resume);
    const plane = this.resources.plane;
    const onDue = () => void this.run();
    const count = resume?.workers ?? config.workers;
    this.slots = new Slots({ count, crashes: resume?.crashes, log, drain: config.drain, plane, onDue });
    this.retirement = new Retirement(config, plane, () => this.stopping);
    this.history = new History(resume?.history);
    if (!resume) this.next = plane?.firstGeneration ?? 1;
    const { listeners, runtimeDir } = this.resources;
    const stopping = () => this.stopping;
    const ctx = { config, log, handover: this.handover, ready: config.ready, listeners, runtimeDir, stopping };
    this.parts = {
      config,
      log,
      slots: this.slots,
      retirement: this.retirement,
      live: this.live,
      launch: (number, slot) => launch({ ...ctx, spawned: (gen) => this.track(gen) }, number, slot),
      nextNumber: () => this.next++,
      failed: () => ++this.failed,
      stopping,
    };
    const ready = formatReady(config.ready);
    const common = { handover: this.handover.name, ready, drain: config.drain, stop_signal: config.stopSignal };
    log.event('config', resume ? { ...common, resumed: true } : common);
  }

  get listeners(): Listener[] {
    return this.resources.listeners;
  }

  /** Upgrades that were rolled back. */
  get failures(): number {
    return this.failed;
  }

  /** Runs generation 1 in every worker slot until it is active; rejects (after cleaning up) if it never gets there. */
  async start(): Promise<void> {
    if (this.resumed) return this.restore(this.resumed);
    this.busy = true;
    const number = this.next;
    const failed = await runFirst(this.parts);
    this.busy = false;
    if (this.stopping) return;
    if (failed) {
      this.stopping = true;
      this.resolveDone(await this.shutdown());
      const hint = failed.hint ?? 'run the command by hand to see why it does not start, or raise --ready-timeout';
      throw new BatonError('ERR_BATON_START', `generation ${number} failed: ${failed.reason}`, hint, { generation: number });
    }
    this.hooks.started?.(this.slots.at(0)!);
    const orphan = this.resources.plane?.retireOrphan();
    orphan?.catch((err: Error) => this.log.event('warning', { message: `retiring the orphan: ${err.message}` }));
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
    if (this.busy && !this.pending) this.log.event('coalesced', { message: 'an upgrade is in flight; one more will follow' });
    const outcome = new Promise<UpgradeResult>((resolve) => (this.pending ??= []).push(resolve));
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
    this.slots.clearRestarts();
    this.retirement.pause();
    for (const w of this.pending?.splice(0) ?? []) w(this.refused('baton is stopping'));
    this.pending = undefined;
    this.hooks.stopping?.();
    this.log.event('stopping', { generations: this.live.size });
    void this.shutdown().then(this.resolveDone);
  }

  /** For an exit baton did not plan: ask every generation to stop and remove what baton made, synchronously. */
  abandon(): void {
    for (const g of this.live) g.signal(this.config.stopSignal);
    this.resources.release();
  }

  /** Undoes the constructor, for a baton that cannot start after all (nothing was spawned). */
  discard(): void {
    this.resources.discard();
  }

  /** What `baton status` shows. */
  status(): Status {
    const { listeners, plane, startedAt } = this.resources;
    const parts = { name: this.config.name, startedAt, handover: this.handover.name, workers: this.slots.length };
    return buildStatus({ ...parts, listeners, live: this.live, upgrades: this.history.list(), failures: this.failed, plane });
  }

  /**
   * SIGUSR2, before baton execs its own program again: waits for the loop, holds it and every timer,
   * and returns what the next program needs. Undefined when stopping or when one is under way.
   */
  async freeze(): Promise<ResumeState | undefined> {
    if (this.stopping || this.execing) return undefined;
    this.execing = true;
    await this.idle();
    if (this.stopping) return void (this.execing = false);
    this.busy = true;
    this.retirement.pause();
    this.slots.clearRestarts();
    const { listeners, runtimeDir, startedAt } = this.resources;
    const history = this.history.list();
    const pending = this.pending !== undefined;
    return capture({ listeners, runtimeDir, startedAt, next: this.next, failures: this.failed, slots: this.slots, pending, history, live: this.live });
  }

  /** The exec failed: baton goes on as before, with the upgrade `state` held pending. */
  thaw(state: ResumeState): void {
    this.resumeTimers(state.pending);
    this.busy = false;
    this.execing = false;
    void this.run();
  }

  /** Resolves once the loop is not running. */
  private idle(): Promise<void> {
    return this.busy ? new Promise((resolve) => this.idleWaiters.push(resolve)) : Promise.resolve();
  }

  private refused(reason: string): UpgradeResult {
    const serving = this.slots.newest;
    return { ok: false, generation: 0, reason, requestedAt: new Date().toISOString(), ms: 0, ...(serving ? { serving } : {}) };
  }

  /** From spawn on, baton watches the process: its exit is routed through onExit. */
  private track(gen: Generation): void {
    this.live.add(gen);
    void gen.exited.then((st) => this.onExit(gen, st));
  }

  /** The one loop that starts processes: upgrades, crash restarts and scaling, one at a time. */
  private async run(): Promise<void> {
    if (this.stopping || this.busy) return;
    this.busy = true;
    try {
      while (!this.stopping && (this.pending || this.scaleBy !== 0 || this.slots.hasDue())) {
        if (this.scaleBy !== 0) this.applyScale();
        else if (this.pending) await this.upgrade();
        else await Promise.all(this.slots.takeDue().map((slot) => this.restart(slot)));
      }
    } catch (err) {
      this.log.event('warning', { message: `upgrade loop: ${(err as Error).message}` });
    } finally {
      this.busy = false;
      for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  /** One upgrade for every request pending now; later requests wait for the next. */
  private async upgrade(): Promise<void> {
    const waiters = this.pending!;
    this.pending = undefined;
    let result: UpgradeResult | undefined;
    try {
      result = await runWave(this.parts);
    } finally {
      if (result) {
        this.history.add(result);
        this.hooks.upgraded?.(result);
      }
      const why = this.stopping ? 'baton is stopping' : 'the upgrade failed inside baton; see its log';
      for (const w of waiters) w(result ?? this.refused(why));
    }
  }

  /** A crash restart: a new process (a new generation number) in one empty slot. */
  private async restart(slot: number): Promise<void> {
    const number = this.next++;
    const [{ gen, reason }] = await launchAll(this.parts, number, [slot]);
    if (this.stopping) return;
    if (!gen) return this.slots.crashed(slot, reason);
    if (slot >= this.slots.length || this.slots.at(slot)) return discardReady(this.parts, gen, 'the slot is no longer empty');
    this.slots.activate(gen, slot);
  }

  /** SIGTTIN/SIGTTOU: the processes of removed slots drain like a retired wave. */
  private applyScale(): void {
    const removed = this.slots.resize(this.slots.length + this.scaleBy);
    this.scaleBy = 0;
    for (const [worker, gen] of removed) {
      gen.to('draining');
      this.retirement.retire([gen]);
      this.log.event('draining', { generation: gen.number, worker, pid: gen.pid, drain: this.config.drain });
      this.retirement.drainLater(gen);
    }
    this.log.event('scale', { workers: this.slots.length });
  }

  /** The resumed side of a self-upgrade: take over the generations the previous program ran. */
  private restore(state: ResumeState): void {
    this.next = state.next;
    this.failed = state.failures;
    const adopted = adopt(state, this.log);
    for (const gen of adopted) {
      this.track(gen);
      if (gen.state === 'active') this.slots.take(gen.worker, gen);
      if (gen.times.stop !== undefined) void gen.stop(this.config.stopSignal, this.config.killTimeout);
    }
    this.slots.lastActive = adopted.find((g) => g.pid === state.lastActive);
    this.retirement.carry(adopted);
    this.log.event('resumed', { message: `took over ${state.generations.length} generation(s)`, serving: this.slots.newest });
    this.resumeTimers(state.pending);
    void this.run();
  }

  /** After a self-upgrade (done or failed): drain timers again, empty slots restart, a pending upgrade runs. */
  private resumeTimers(pending: boolean): void {
    for (const g of this.live) if (g.state === 'draining') this.retirement.drainLater(g);
    for (let slot = 0; slot < this.slots.length; slot++) {
      if (!this.slots.at(slot)) this.slots.crashed(slot, 'no process was serving in this slot across the self-upgrade');
    }
    if (pending) this.pending ??= [];
  }

  private onExit(gen: Generation, status: ExitStatus): void {
    this.live.delete(gen);
    this.retirement.forget(gen);
    for (const fd of gen.own) closeFd(fd);
    const { grab, ready, stop, exit } = gen.times;
    const code = exitCode(status);
    this.log.event('exit', { generation: gen.number, worker: gen.worker, pid: gen.pid, message: describeExit(status), code, grab, ready, stop, exit });
    if (gen.state === 'active' || gen.state === 'draining') gen.to('exited');
    const slot = this.slots.slotOf(gen);
    if (slot < 0 || this.stopping) return;
    this.slots.vacate(slot);
    this.slots.exitedAfter(slot, performance.now() - (gen.activeSince ?? 0));
    this.slots.crashed(slot, `generation ${gen.number} ${describeExit(status)} while active`);
  }

  private async shutdown(): Promise<number> {
    this.slots.clearRestarts();
    for (const g of this.live) if (g.state === 'active') g.to('draining');
    await Promise.all([...this.live].map((g) => g.stop(this.config.stopSignal, this.config.killTimeout)));
    this.resources.plane?.close();
    this.resources.release();
    const last = this.slots.lastActive;
    const code = last?.status ? exitCode(last.status) : 0;
    this.log.event('stopped', { code });
    return code;
  }
}
