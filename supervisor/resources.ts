import { adoptActivated } from './activation.js';
import { formatAddress } from './address.js';
import { type Config, socketPerGeneration } from './config.js';
import { GenerationSockets } from './gen-socket.js';
import type { Generation } from './generation.js';
import type { Handover, Source } from './handover/handover.js';
import { handovers } from './handover/index.js';
import { type Keeper, openSource } from './handover/keeper.js';
import { closeListeners, type Listener, openListeners } from './listener.js';
import type { Logger } from './log.js';
import { NotifySocket } from './notify-socket.js';
import { type Orphan, Orphans } from './orphans.js';
import { removePidFile, writePidFile } from './pidfile.js';
import { type RecordedProcess, RunRecord } from './record.js';
import { ensureRuntimeDir, makeRuntimeDir, removeRuntimeDir } from './runtime-dir.js';
import type { ResumeState } from './self-upgrade.js';
import { type SteeringOptions, SteeringPlane } from './steering/plane.js';
import { setCloexec } from './sys/fd.js';
import { isOrphan, takeOver } from './takeover.js';

/**
 * What baton holds for its whole life besides its generations: the listeners (and the keeper that
 * holds them for pidfd generations), a runtime directory (notify sockets), the pid file, the run
 * record, the steering plane, and the orphans of a baton that died. Opened all or none; released once.
 */
export class Resources {
  readonly startedAt: number;
  readonly orphans: Orphans;
  readonly source: Source;
  readonly keeper?: Keeper;
  /** Under --steer (not --shared-socket): each generation's own socket, instead of baton's listeners. */
  readonly sockets?: GenerationSockets;

  private constructor(
    private readonly config: Config,
    readonly listeners: Listener[],
    readonly runtimeDir: string,
    readonly plane: SteeringPlane | undefined,
    startedAt: number,
    private readonly record: RunRecord | undefined,
    orphans: Orphan[],
    private readonly log: Logger,
  ) {
    this.startedAt = startedAt;
    ({ source: this.source, keeper: this.keeper } = openSource(
      handovers[config.handover].pulls,
      listeners,
      log,
      config.user,
    ));
    const plan = [...(plane?.orphan ? [plane.orphan] : []), ...(plane?.leftOver ?? []), ...orphans];
    this.orphans = new Orphans(plan, config, log);
    if (socketPerGeneration(config, handovers[config.handover])) {
      const { pulls } = handovers[config.handover];
      const spec = config.listen[0]!;
      this.sockets = new GenerationSockets({ spec, backlog: config.backlog, pulls, user: config.user, log });
    }
  }

  /** The number the next generation gets after the orphans'. */
  get firstGeneration(): number {
    return Math.max(0, ...this.orphans.remaining.map((o) => o.number)) + 1;
  }

  /** The orphans not yet gone that a run record names (a dead baton's generations; not a steering orphan). */
  get recordedOrphans(): RecordedProcess[] {
    return this.orphans.remaining.flatMap(({ held: _, notify, ...o }) => (notify ? [{ ...o, notify }] : []));
  }

  /** Writes the run record: the live generations and the orphans not yet gone. */
  saveRecord(live: Iterable<Generation>): void {
    if (!this.record) return;
    const { runtimeDir } = this;
    const gens = [...live].map((g) => ({
      ...{ number: g.number, worker: g.worker, pid: g.pid, starttime: g.starttime || '0' },
      ...{ startedAt: Date.now() - g.ms(), notify: NotifySocket.pathFor(runtimeDir, g.number, g.worker) },
    }));
    try {
      this.record.save(runtimeDir, [...gens, ...this.recordedOrphans]);
    } catch (err) {
      this.log.event('warning', { message: `run record ${this.record.path}: ${(err as Error).message}` });
    }
  }

  /** Opens everything, or carries it over from the program this one replaced (`resume`). */
  static open(config: Config, handover: Handover, log: Logger, resume?: ResumeState): Resources {
    // With a socket per generation baton opens no listener of its own, and a restart takes over as in port mode.
    const own = !socketPerGeneration(config, handover);
    const steering = config.steer.length > 0 ? steeringOptions(config, handover.sharesListener && own) : undefined;
    const record = handover.sharesListener && own ? RunRecord.of(config.listen) : undefined;
    if (resume) {
      for (const l of resume.listeners) setCloexec(l.fd, true);
      const plane = steering ? new SteeringPlane(steering, resume.listeners, log, true) : undefined;
      // Orphans a takeover had not retired yet when this program replaced the one that took them over.
      const orphans = (resume.orphans ?? []).filter(isOrphan);
      const { listeners, runtimeDir, startedAt } = resume;
      const r = new Resources(config, listeners, runtimeDir, plane, startedAt, record, orphans, log);
      r.sockets?.adopt(resume.sockets ?? []);
      return r;
    }
    const stray = (what: string) =>
      log.event('warning', { message: `socket activation passed ${what}, which no --listen names; closed` });
    const activated = adoptActivated(config.listen, stray);
    // Under socket activation the service manager holds the listeners (and stops the old processes).
    const found = record && activated.size === 0 ? takeOver(record, config.listen, log) : undefined;
    const stale = (path: string) => log.event('stale-socket', { message: `removed stale unix socket ${path}` });
    const listeners = openListeners(own ? config.listen : [], config.backlog, stale, activated, found?.taken);
    let runtimeDir: string | undefined;
    try {
      runtimeDir = makeRuntimeDir(config.user !== undefined);
      const replaced = (pid: number) =>
        log.event('stale-pid-file', { message: `replaced pid file of dead pid ${pid}` });
      if (config.pidFile) writePidFile(config.pidFile, replaced);
      const plane = steering ? new SteeringPlane(steering, listeners, log, false) : undefined;
      for (const l of listeners) {
        log.event('listening', {
          listener: formatAddress(l.address),
          name: l.name,
          fd: l.fd,
          ...(l.adopted ? { activated: true } : {}),
          ...(l.taken ? { taken: true } : {}),
        });
      }
      return new Resources(config, listeners, runtimeDir, plane, Date.now(), record, found?.orphans ?? [], log);
    } catch (err) {
      release(config, listeners, runtimeDir, (found?.orphans.length ?? 0) > 0);
      throw err;
    }
  }

  /**
   * Closes listeners and removes the runtime directory, pid file and run record; orphans whose
   * retirement never began serve on, so the record is left naming them for the next baton.
   */
  release(): void {
    const serving = !this.orphans.retired && this.orphans.remaining.length > 0;
    if (serving) this.saveRecord([]);
    else this.record?.remove();
    this.keeper?.kill();
    this.sockets?.closeAll();
    release(this.config, this.listeners, this.runtimeDir, serving);
  }

  /** A self-upgrade: the keepers go (the next program starts its own when a launch needs one). */
  async pauseKeepers(): Promise<void> {
    await Promise.all([this.keeper?.close(), this.sockets?.pause()]);
  }

  /**
   * Before a self-upgrade's execve: the runtime directory there again if a tmp cleaner removed it since the last
   * launch (the next program takes only one that is); throws if another user made one at its name.
   */
  keepRuntimeDir(): void {
    ensureRuntimeDir(this.runtimeDir, this.config.user !== undefined);
  }

  /** Stops orphans being retired, then the steering plane, then releases the rest. */
  async close(): Promise<void> {
    await this.orphans.stop();
    this.plane?.close(!this.orphans.retired);
    this.release();
  }

  /** Undoes open(), for a baton that cannot start after all (nothing was spawned). */
  discard(): void {
    this.plane?.close(true);
    this.release();
  }
}

function release(config: Config, listeners: Listener[], runtimeDir: string | undefined, orphansServe = false): void {
  closeListeners(listeners, orphansServe);
  if (runtimeDir) removeRuntimeDir(runtimeDir);
  if (config.pidFile) removePidFile(config.pidFile);
}

/** `sharesListener`: baton's own listener sits in the slot for its whole life (else each generation's). */
function steeringOptions(config: Config, sharesListener: boolean): SteeringOptions {
  const { name, stateDir, bpffs, steer: rules, force, keepSteering, stopSignal } = config;
  return { name, stateDir, bpffs, rules, force, keepSteering, stopSignal, sharesListener };
}
