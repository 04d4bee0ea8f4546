import type { Config } from './config.js';
import { describeExit, type ExitStatus, stopOutcome } from './exit-status.js';
import { exitFields, type Generation } from './generation.js';
import type { Handover } from './handover/handover.js';
import { handovers } from './handover/index.js';
import { Health } from './health.js';
import { Helpers } from './helpers.js';
import { activeHold } from './holding.js';
import type { Hooks } from './hooks.js';
import { launch } from './launch.js';
import type { Listener } from './listener.js';
import type { Logger } from './log.js';
import { Loop, STOPPING } from './loop.js';
import { processes, type Readings, readings } from './metrics/readings.js';
import { Resources } from './resources.js';
import { Retirement } from './retire.js';
import { capture, type ResumeState, restore, resumeTimers } from './self-upgrade.js';
import { Slots } from './slots.js';
import { buildStatus, type Status } from './status.js';
import { History, refusal, type UpgradeResult, type Waiter } from './upgrade.js';
import { runFirst } from './wave.js';
import type { WaveParts } from './wave-parts.js';

/**
 * Owns the listeners and runs generations of the command through one serialising upgrade loop:
 * at most one upgrade in flight, and requests arriving meanwhile coalesce into one follow-up.
 */
export class Supervisor {
  readonly done: Promise<number>;
  private readonly hooks: Hooks;
  private readonly handover: Handover;
  private readonly resources: Resources;
  private readonly live = new Set<Generation>();
  /** Spawns under way: a stop waits for them, so that it stops their processes too. */
  private readonly starting = new Set<Promise<Generation>>();
  /** The rooms a wave works in: config, log, slots, retirement, the live generations, launch. */
  private readonly rooms: WaveParts;
  private readonly resumed?: ResumeState;
  private next: number;
  private readonly loop: Loop;
  private stopping = false;
  private execing = false;
  private resolveDone!: (code: number) => void;

  /** Opens listeners, runtime directory and pid file, all or none. `reread`: --config, read at each upgrade. */
  constructor(config: Config, log: Logger, hooks: Hooks = {}, resume?: ResumeState, reread?: WaveParts['reread']) {
    this.hooks = hooks;
    this.handover = handovers[config.handover];
    this.resumed = resume;
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    this.resources = Resources.open(config, this.handover, log, resume);
    const { listeners, runtimeDir, plane, source } = this.resources;
    const [count, crashes] = [resume?.workers ?? config.workers, resume?.crashes];
    const onActive = (gen: Generation) => {
      this.rooms.health.watch(gen);
      this.resources.sockets?.serve(gen.socket);
    };
    const slots = new Slots({ count, crashes, log, plane, onActive, onDue: () => void this.loop.run() });
    const stopping = () => this.stopping;
    const held = activeHold(this.live, listeners, this.handover, log);
    const retirement = new Retirement(config, stopping, held);
    const [history, helpers] = [new History(resume?.history, resume?.failures), new Helpers(log, config.user)];
    const health = new Health(config, helpers, log, slots);
    this.next = resume?.next ?? this.resources.firstGeneration;
    const ctx = { config, log, handover: this.handover, listeners, source, runtimeDir, helpers };
    const spawned = (gen: Generation) => this.track(gen);
    // Its launch awaits the spawn first, and tracks the process before a stop's wait for it ends.
    const starting = (spawn: Promise<Generation>) => {
      this.starting.add(spawn);
      void spawn.finally(() => this.starting.delete(spawn)).catch(() => {});
    };
    this.rooms = {
      ...{ config, reread, log, slots, retirement, history, helpers, health, live: this.live, stopping },
      sockets: this.resources.sockets,
      launch: (number, slot, release, socket) =>
        launch({ ...ctx, stopping, starting, spawned }, number, slot, release, socket),
      nextNumber: () => this.next++,
    };
    this.loop = new Loop(this.rooms, hooks);
  }

  get listeners(): Listener[] {
    return this.resources.listeners;
  }

  /** Upgrades that were rolled back. */
  get failures(): number {
    return this.rooms.history.failures;
  }

  /**
   * Runs generation 1 in every worker slot until it is active, or takes over the generations of the
   * program a self-upgrade replaced. Rejects (after cleaning up) if generation 1 never gets there.
   */
  async start(): Promise<void> {
    if (this.resumed) {
      const answer = (fd: number) => this.loop.answering(fd);
      const { carried, waiting } = restore({ ...this.rooms, track: (gen) => this.track(gen), answer }, this.resumed);
      this.loop.carried = carried;
      void this.resources.orphans.retire(); // what a takeover was still retiring
      if (this.resumed.pending) this.loop.requests.want(waiting);
      return void this.loop.run();
    }
    const failed = await this.loop.first(() => runFirst(this.rooms));
    if (this.stopping) return;
    if (failed) {
      this.stopping = true;
      this.resolveDone(await this.shutdown());
      throw failed;
    }
    this.hooks.started?.(this.rooms.slots.at(0)!);
    void this.resources.orphans.retire();
    void this.loop.run();
  }

  /**
   * SIGHUP or `baton reload`: start a new generation; coalesced while one is in flight. Resolves
   * with the outcome of the upgrade that serves this request.
   */
  reload(source = 'SIGHUP', client?: Omit<Waiter, 'settle'>): Promise<UpgradeResult> {
    const ignored = this.stopping ? `; ignored: ${STOPPING}` : '';
    this.rooms.log.event('reload', { message: `upgrade requested by ${source}${ignored}` });
    if (this.stopping) return Promise.resolve(refusal(STOPPING, this.rooms.slots.newest));
    this.hooks.reloading?.();
    if (this.loop.running && !this.loop.requests.wanted) {
      this.rooms.log.event('coalesced', { message: 'an upgrade is in flight; one more will follow' });
    }
    const outcome = this.loop.requests.add(client);
    void this.loop.run();
    return outcome;
  }

  /** SIGTTIN/SIGTTOU: one worker more or fewer, without an upgrade. */
  scale(delta: 1 | -1): void {
    if (this.stopping) return;
    if (this.handover.sharesListener) this.loop.scale(delta);
    else this.rooms.log.event('warning', { message: 'no scaling: --handover port runs one worker' });
  }

  /** SIGTERM/SIGINT: stop every generation gracefully; a second call kills what is left at once. */
  stop(): void {
    if (this.stopping) return void Promise.all([...this.live].map((g) => g.kill('second stop request', 'second-stop')));
    this.stopping = true;
    this.rooms.helpers.stopAll();
    this.rooms.slots.clearRestarts();
    this.rooms.retirement.pause();
    this.loop.refuseAll(this.rooms.slots.newest);
    this.hooks.stopping?.();
    this.rooms.log.event('stopping', { generations: this.live.size });
    void this.shutdown().then(this.resolveDone);
  }

  /** For an exit baton did not plan: ask every generation to stop and remove what baton made, synchronously. */
  abandon(): void {
    this.rooms.helpers.stopAll();
    for (const g of this.live) g.signal(g.release.stopSignal);
    this.resources.release();
  }

  /** Undoes the constructor, for a baton that cannot start after all (nothing was spawned). */
  discard(): void {
    this.resources.discard();
  }

  /** What `baton status` shows. */
  status(): Status {
    return buildStatus({ ...this.rooms, handover: this.handover, resources: this.resources });
  }

  /** What the metrics' gauges and `reload --wait --progress` read: cheap, no scan of /proc but for draining. */
  readings(): Readings {
    return readings({ live: this.live, slots: this.rooms.slots, resources: this.resources });
  }

  /** The live processes and their states alone (what `--progress` polls while the old ones exit). */
  processes(): Readings['processes'] {
    return processes(this.live);
  }

  /**
   * SIGUSR2, before baton execs its own program again: waits for the loop, holds it and every timer,
   * and returns what the next program needs. Undefined when stopping or when one is under way.
   */
  async freeze(): Promise<ResumeState | undefined> {
    if (this.stopping || this.execing) return undefined;
    this.execing = true;
    await this.loop.idle();
    this.execing = !this.stopping;
    if (this.stopping) return undefined;
    this.loop.hold();
    this.rooms.retirement.pause();
    this.rooms.slots.clearRestarts();
    await this.rooms.health.pause(); // a probe's process ends with this program, not after it
    await this.resources.pauseKeepers(); // the next program starts its own
    // SIGTERM and SIGINT still come through: a stop meanwhile has signalled the generations, no exec now.
    if (this.stopping) {
      this.execing = false;
      return undefined;
    }
    this.resources.keepRuntimeDir();
    const running = { next: this.next, requests: this.loop.requests, carried: this.loop.carried };
    return capture(this.resources, { ...this.rooms, ...running });
  }

  /** The exec failed (or a self-upgrade stopped short of it): baton goes on as before. */
  thaw(): void {
    if (this.execing && !this.stopping) {
      resumeTimers(this.rooms, this.loop.carried?.trial);
      for (const [, gen] of this.rooms.slots.serving()) this.rooms.health.watch(gen);
    }
    this.execing = false;
    this.loop.release();
  }

  /**
   * Resolves once no upgrade, restart or scaling is under way. `carry`: a canary window in flight is not waited
   * out but carried on (a self-upgrade into a build that takes it).
   */
  idle(carry = false): Promise<void> {
    return this.loop.idle(carry);
  }

  /** From spawn on, baton watches the process: its exit is routed through onExit. */
  private track(gen: Generation): void {
    this.live.add(gen);
    this.resources.saveRecord(this.live);
    void gen.exited.then((st) => this.onExit(gen, st));
  }

  private onExit(gen: Generation, status: ExitStatus): void {
    this.live.delete(gen);
    this.resources.saveRecord(this.live);
    this.rooms.retirement.forget(gen);
    this.rooms.log.event('exit', exitFields(gen, status));
    if (gen.state === 'active' || gen.state === 'draining') gen.to('exited');
    if (!this.stopping) this.rooms.slots.lost(gen, `generation ${gen.number} ${describeExit(status)} while active`);
  }

  private async shutdown(): Promise<number> {
    this.rooms.slots.clearRestarts();
    // A launch that was waiting for the spawn before its own may have begun one meanwhile.
    while (this.starting.size > 0) await Promise.allSettled([...this.starting]);
    const [stopped] = await Promise.all([this.rooms.retirement.stopAll(this.live), this.resources.orphans.stop()]);
    await this.resources.close();
    const { code, message } = stopOutcome(stopped, this.rooms.slots.lastActive);
    this.rooms.log.event('stopped', { code, message });
    return code;
  }
}
