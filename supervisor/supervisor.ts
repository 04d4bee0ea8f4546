import { chownSync, mkdtempSync, rmSync } from 'node:fs';
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
import { NotifySocket } from './notify-socket.js';
import { removePidFile, writePidFile } from './pidfile.js';
import { formatReady, waitReady, type ReadySpec } from './ready/index.js';
import type { Status } from './status.js';
import { establishedInodes } from './sys/proc-net.js';
import { HISTORY, preflight, type UpgradeResult } from './upgrade.js';
import { SteeringPlane } from './steering/plane.js';
import { closeFd, setCloexec } from './sys/fd.js';
import { execSelf, type ResumeState } from './self-upgrade.js';

/** Variables that describe baton's own environment and must not leak into a generation's. */
const PRIVATE_ENV = ['NOTIFY_SOCKET', 'BATON_NOTIFY_SOCKET', 'LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES', '_PID', '_FD', 'BATON_LISTENERS', 'BATON_GENERATION'];

/** Moments the world outside (systemd) hears of. */
export interface Hooks {
  started?(gen: { number: number; pid: number }): void;
  reloading?(): void;
  upgraded?(result: UpgradeResult): void;
  stopping?(): void;
}

type Launch = { gen: Generation; reason?: undefined; hint?: undefined } | { gen?: undefined; reason: string; hint?: string };

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
  private active?: Generation;
  private lastActive?: Generation;
  private next = 1;
  private upgrading = false;
  private pending = false;
  private stopping = false;
  private crashes = 0;
  private restartTimer?: NodeJS.Timeout;
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
      this.runtimeDir = mkdtempSync(join(tmpdir(), 'baton-'));
      if (config.user) chownSync(this.runtimeDir, config.user.uid, config.user.gid);
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

  /** Runs generation 1 until it is active; rejects (after cleaning up) if it never gets there. */
  async start(): Promise<void> {
    if (this.resumed) return this.adopt(this.resumed);
    this.upgrading = true;
    const { gen, reason, hint } = await this.launch();
    this.upgrading = false;
    if (this.stopping) return;
    if (!gen) {
      this.stopping = true;
      this.resolveDone(await this.shutdown());
      throw new BatonError('ERR_BATON_START', `generation 1 failed: ${reason}`, hint ?? 'run the command by hand to see why it does not start, or raise --ready-timeout', { generation: 1 });
    }
    this.activate(gen);
    this.hooks.started?.(gen);
    void this.plane?.retireOrphan();
    if (this.pending) void this.upgrades();
  }

  /**
   * SIGHUP or `baton reload`: start a new generation; coalesced while one is in flight. Resolves
   * with the outcome of the upgrade that serves this request.
   */
  reload(source = 'SIGHUP'): Promise<UpgradeResult> {
    this.log.event('reload', { message: `upgrade requested by ${source}` });
    if (this.stopping) return Promise.resolve(this.refused('baton is stopping'));
    this.hooks.reloading?.();
    const outcome = new Promise<UpgradeResult>((resolve) => this.waiting.push(resolve));
    void this.upgrades();
    return outcome;
  }

  /** SIGTERM/SIGINT: stop every generation gracefully; a second call kills what is left at once. */
  stop(): void {
    if (this.stopping) {
      for (const g of this.live) void g.kill('second stop request');
      return;
    }
    this.stopping = true;
    clearTimeout(this.restartTimer);
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
    const established = establishedInodes();
    return {
      pid: process.pid,
      name: this.config.name,
      uptimeMs: Date.now() - this.startedAt,
      handover: this.handover.name,
      listeners: this.listeners.map((l) => ({ name: l.name, address: formatAddress(l.address), fd: l.fd })),
      generations: [...this.live].map((g) => ({
        number: g.number,
        pid: g.pid,
        state: g.state,
        ageMs: g.ms(),
        readyMs: g.times.ready,
        // Connections still open in a draining generation: its sockets that are established TCP connections.
        connections: g.state === 'draining' ? [...socketsOf(g.pid)].filter((s) => established.has(Number(s.slice(8, -1)))).length : undefined,
      })),
      upgrades: [...this.history],
      failures: this.failures,
      ...(this.plane ? { steering: this.plane.snapshot() } : {}),
    };
  }

  private refused(reason: string): UpgradeResult {
    return { ok: false, generation: 0, reason, requestedAt: new Date().toISOString(), ms: 0, ...(this.active ? { serving: this.active.number } : {}) };
  }

  private async upgrades(): Promise<void> {
    if (this.stopping) return;
    if (this.upgrading) {
      if (!this.pending) this.log.event('coalesced', { message: 'an upgrade is in flight; one more will follow' });
      this.pending = true;
      return;
    }
    clearTimeout(this.restartTimer);
    this.upgrading = true;
    try {
      do {
        this.pending = false;
        const waiters = this.waiting.splice(0);
        const result = await this.upgradeOnce();
        if (result) {
          this.history.push(result);
          if (this.history.length > HISTORY) this.history.shift();
          this.hooks.upgraded?.(result);
        }
        for (const w of waiters) w(result ?? this.refused('baton is stopping'));
      } while (this.pending && !this.stopping);
    } finally {
      this.upgrading = false;
    }
  }

  /** One upgrade (or crash restart, when nothing is active); undefined when baton began to stop. */
  private async upgradeOnce(): Promise<UpgradeResult | undefined> {
    const began = performance.now();
    const requestedAt = new Date().toISOString();
    const done = (r: Omit<UpgradeResult, 'requestedAt' | 'ms'>): UpgradeResult => ({
      ...r,
      requestedAt,
      ms: Math.round(performance.now() - began),
      ...(this.active ? { serving: this.active.number } : {}),
    });
    if (this.config.check && this.active) {
      const failed = await preflight(this.config.check, this.config.readyTimeout);
      if (this.stopping) return undefined;
      if (failed) {
        this.failures++;
        this.log.event('preflight-failed', { message: failed, serving: this.active.number, failures: this.failures });
        return done({ ok: false, generation: 0, reason: failed });
      }
    }
    const { gen, reason, hint } = await this.launch();
    if (this.stopping) return undefined;
    if (!gen) {
      if (this.active) {
        this.failures++;
        this.log.event('rollback', { generation: this.next - 1, message: reason, hint, serving: this.active.number, failures: this.failures });
      } else {
        this.crashes++;
        this.scheduleRestart(reason);
      }
      return done({ ok: false, generation: this.next - 1, reason });
    }
    this.activate(gen, Math.round(performance.now() - began));
    return done({ ok: true, generation: gen.number, ...(gen.times.ready === undefined ? {} : { readyMs: gen.times.ready }) });
  }

  /** Spawns the next generation and waits until it is ready, exits, or times out. */
  private async launch(): Promise<Launch> {
    const number = this.next++;
    const notify = new NotifySocket(this.runtimeDir, number, this.config.user);
    const abort = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    try {
      const plan = this.handover.plan(this.config.command, this.listeners);
      const env: NodeJS.ProcessEnv = { ...process.env };
      for (const k of PRIVATE_ENV) delete env[k];
      const gen = new Generation(
        number,
        { ...plan, env: { ...env, ...plan.env, BATON_GENERATION: String(number), NOTIFY_SOCKET: notify.path }, ...this.config.user },
        this.log,
      );
      this.live.add(gen);
      void gen.exited.then((s) => this.onExit(gen, s));
      this.log.event('spawn', { generation: number, pid: gen.pid, command: this.config.command.join(' ') });
      this.handover.open(gen.pid);
      const grabbed = this.handover.watch?.(gen.pid, plan, this.listeners, abort.signal).then((fds) => {
        gen.own = fds;
        gen.times.grab = gen.ms();
        this.log.event('grab', { generation: number, pid: gen.pid, grab: gen.times.grab, port: plan.port });
      });
      if (plan.port !== undefined) gen.port = plan.port;
      const outcome = await Promise.race([
        // Port handover: whatever the readiness, the slot needs the generation's listener.
        Promise.all([waitReady(this.ready, { pid: gen.pid, generation: number, notify, signal: abort.signal, ...(grabbed ? { grabbed } : {}) }), plan.port === undefined ? undefined : grabbed]).then(
          () => (this.stopping ? 'baton is stopping' : undefined),
          (err: Error) => err.message,
        ),
        gen.exited.then((s) => `${describeExit(s)} before ready`),
        new Promise<string>((r) => (timer = setTimeout(() => r(`not ready within ${this.config.readyTimeout}ms`), this.config.readyTimeout))),
      ]);
      if (outcome === undefined) {
        gen.to('ready');
        gen.times.ready = gen.ms();
        this.log.event('ready', { generation: number, pid: gen.pid, grab: gen.times.grab, ready: gen.times.ready });
        return { gen };
      }
      const said = notify.said();
      const reason = said ? `${outcome} (child said: ${said})` : outcome;
      gen.to('failed');
      this.log.event('failed', { generation: number, pid: gen.pid, message: reason });
      await gen.kill(reason);
      const hint = notify.hint();
      return hint ? { reason, hint } : { reason };
    } catch (err) {
      this.log.event('failed', { generation: number, message: (err as Error).message });
      return { reason: (err as Error).message };
    } finally {
      clearTimeout(timer);
      abort.abort();
      notify.close();
      this.handover.close();
    }
  }

  private activate(gen: Generation, upgradeMs?: number): void {
    const previous = [...this.live].filter((g) => g.state === 'active');
    gen.to('active');
    this.active = gen;
    this.lastActive = gen;
    this.plane?.activate(gen, gen.port);
    this.log.event('active', { generation: gen.number, pid: gen.pid, upgrade: upgradeMs });
    for (const old of previous) {
      old.to('draining');
      this.log.event('draining', { generation: old.number, pid: old.pid, drain: this.config.drain });
      this.drainLater(old);
    }
    const draining = [...this.live].filter((g) => g.state === 'draining');
    for (const g of draining.slice(0, Math.max(0, draining.length - this.config.maxDraining))) {
      void g.kill(`more than --max-draining ${this.config.maxDraining} generations draining`);
    }
  }

  /** After --drain, the stop signal; in port mode only once the old listener's queue is empty. */
  private drainLater(old: Generation): void {
    const t = setTimeout(async () => {
      this.drainTimers.delete(t);
      await this.plane?.emptied(old.own[0], this.config.killTimeout);
      if (!this.stopping) void old.stop(this.config.stopSignal, this.config.killTimeout);
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
    clearTimeout(this.restartTimer);
    const state: ResumeState = {
      listeners: this.listeners,
      runtimeDir: this.runtimeDir,
      next: this.next,
      failures: this.failures,
      crashes: this.crashes,
      pending: this.pending || this.waiting.length > 0,
      startedAt: this.startedAt,
      history: this.history,
      ...(this.lastActive ? { lastActive: this.lastActive.number } : {}),
      generations: [...this.live].map((g) => ({ number: g.number, pid: g.pid, state: g.state, ageMs: g.ms(), own: g.own, ...(g.port === undefined ? {} : { port: g.port }), times: g.times })),
    };
    this.log.event('self-upgrade', { message: `execve ${process.execPath} ${process.argv[1]}`, generations: state.generations.length });
    try {
      beforeExec();
      execSelf(state);
    } catch (err) {
      this.log.event('self-upgrade-failed', { message: (err as Error).message });
      afterFailure();
      for (const g of this.live) if (g.state === 'draining') this.drainLater(g);
      if (!this.active) this.scheduleRestart('self-upgrade failed');
      this.upgrading = false;
      this.execing = false;
      if (state.pending) void this.upgrades();
    }
  }

  /** The resumed side of a self-upgrade: take over the generations the previous program ran. */
  private adopt(state: ResumeState): void {
    this.next = state.next;
    this.failures = state.failures;
    this.crashes = state.crashes;
    this.history.push(...state.history);
    for (const g of state.generations) {
      const gen = new Generation(g.number, { pid: g.pid, state: g.state, ageMs: g.ageMs }, this.log);
      gen.own = g.own;
      for (const fd of g.own) setCloexec(fd, true);
      if (g.port !== undefined) gen.port = g.port;
      Object.assign(gen.times, g.times);
      this.live.add(gen);
      void gen.exited.then((s) => this.onExit(gen, s));
      if (g.state === 'active') this.active = gen;
      if (g.state === 'draining') this.drainLater(gen);
      if (g.number === state.lastActive) this.lastActive = gen;
    }
    this.log.event('resumed', { message: `took over ${state.generations.length} generation(s)`, serving: this.active?.number });
    if (!this.active) this.scheduleRestart('no generation was active across the self-upgrade');
    if (state.pending) void this.upgrades();
  }

  private onExit(gen: Generation, status: ExitStatus): void {
    this.live.delete(gen);
    for (const fd of gen.own) closeFd(fd);
    const { grab, ready, stop, exit } = gen.times;
    this.log.event('exit', { generation: gen.number, pid: gen.pid, message: describeExit(status), code: exitCode(status), grab, ready, stop, exit });
    if (gen.state === 'active' || gen.state === 'draining') gen.to('exited');
    if (gen !== this.active || this.stopping) return;
    this.active = undefined;
    if (this.upgrading) return; // the generation in flight takes over
    if (performance.now() - (gen.activeSince ?? 0) >= backoff.stableAfter) this.crashes = 0;
    this.crashes++;
    this.scheduleRestart(`generation ${gen.number} ${describeExit(status)} while active`);
  }

  private scheduleRestart(reason: string): void {
    const delay = Math.min(backoff.max, Math.round(backoff.base * backoff.factor ** (this.crashes - 1)));
    this.log.event('restart', { message: reason, in: delay, crashes: this.crashes });
    this.restartTimer = setTimeout(() => void this.upgrades(), delay);
  }

  private async shutdown(): Promise<number> {
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
