import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adoptActivated } from './activation.js';
import { formatAddress } from './address.js';
import type { Config } from './config.js';
import type { Handover } from './handover/handover.js';
import { closeListeners, type Listener, openListeners } from './listener.js';
import type { Logger } from './log.js';
import { removePidFile, writePidFile } from './pidfile.js';
import type { ResumeState } from './self-upgrade.js';
import { type SteeringOptions, SteeringPlane } from './steering/plane.js';
import { setCloexec } from './sys/fd.js';

/**
 * What baton holds for its whole life besides its generations: the listeners, a runtime directory
 * (notify sockets), the pid file and the steering plane. Opened all or none; released once.
 */
export class Resources {
  readonly startedAt: number;

  private constructor(
    private readonly config: Config,
    readonly listeners: Listener[],
    readonly runtimeDir: string,
    readonly plane: SteeringPlane | undefined,
    startedAt: number,
  ) {
    this.startedAt = startedAt;
  }

  /** Opens everything, or carries it over from the program this one replaced (`resume`). */
  static open(config: Config, handover: Handover, log: Logger, resume?: ResumeState): Resources {
    const steering = config.steer.length > 0 ? steeringOptions(config, handover) : undefined;
    if (resume) {
      for (const l of resume.listeners) setCloexec(l.fd, true);
      const plane = steering ? new SteeringPlane(steering, resume.listeners, log, true) : undefined;
      return new Resources(config, resume.listeners, resume.runtimeDir, plane, resume.startedAt);
    }
    const stray = (what: string) =>
      log.event('warning', { message: `socket activation passed ${what}, which no --listen names; closed` });
    const activated = adoptActivated(config.listen, stray);
    const stale = (path: string) => log.event('stale-socket', { message: `removed stale unix socket ${path}` });
    const listeners = openListeners(config.listen, config.backlog, stale, activated);
    let runtimeDir: string | undefined;
    try {
      // Root-owned: a --user child may reach its notify socket (0711) but never create files here.
      runtimeDir = mkdtempSync(join(tmpdir(), 'baton-'));
      if (config.user) chmodSync(runtimeDir, 0o711);
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
        });
      }
      return new Resources(config, listeners, runtimeDir, plane, Date.now());
    } catch (err) {
      release(config, listeners, runtimeDir);
      throw err;
    }
  }

  /** Closes listeners and removes the runtime directory and pid file. */
  release(): void {
    release(this.config, this.listeners, this.runtimeDir);
  }

  /** Undoes open(), for a baton that cannot start after all (nothing was spawned). */
  discard(): void {
    this.plane?.close();
    this.release();
  }
}

function release(config: Config, listeners: Listener[], runtimeDir: string | undefined): void {
  closeListeners(listeners);
  if (runtimeDir) rmSync(runtimeDir, { recursive: true, force: true });
  if (config.pidFile) removePidFile(config.pidFile);
}

function steeringOptions(config: Config, handover: Handover): SteeringOptions {
  const { name, stateDir, bpffs, steer: rules, force, keepSteering, drain, killTimeout, stopSignal } = config;
  const { sharesListener } = handover;
  return { name, stateDir, bpffs, rules, force, keepSteering, drain, killTimeout, stopSignal, sharesListener };
}
