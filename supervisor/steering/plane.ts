import { fstatSync } from 'node:fs';
import { alreadyRunning, BatonError } from '../errors.js';
import type { Held } from '../handover/handover.js';
import type { Listener } from '../listener.js';
import type { Logger } from '../log.js';
import type { Orphan } from '../orphans.js';
import { pullSocket } from '../sys/pidfd.js';
import { alive, cmdline, parentPid, startedAs, startTime } from '../sys/proc.js';
import { listeningSockets } from '../sys/proc-net.js';
import { signalGroup } from '../sys/process.js';
import type { Rule } from './rules.js';
import { shadowed } from './shadow.js';
import { refuseSplit } from './split.js';
import { type Retiring, readState, removeState, StateWriter } from './state.js';
import { Steering } from './steering.js';

/** What the plane needs of baton's configuration. */
export interface SteeringOptions {
  name: string;
  stateDir: string;
  bpffs: string;
  rules: Rule[];
  force: boolean;
  keepSteering: boolean;
  stopSignal: NodeJS.Signals;
  /** Generations serve from baton's listener, which then sits in the slot for baton's whole life. */
  sharesListener: boolean;
}

/**
 * Steering as the supervisor uses it. Shared-socket mode puts baton's own listener in the slot for
 * baton's whole life. Port mode switches the slot to each new generation's own listener, and
 * keeps a state file so that a restarted baton can take over from a generation left serving.
 */
export class SteeringPlane {
  readonly steering: Steering;
  readonly orphan?: Orphan;
  /** Port mode: the generations a previous baton had switched away from and that still run; retired with the orphan. */
  readonly leftOver: Orphan[] = [];
  /** Port mode: who is in the slot, and who left it and may still run (the state names both). */
  private serving?: Retiring;
  private retiring: Retiring[] = [];
  private readonly options: SteeringOptions;
  private readonly log: Logger;
  private readonly state: StateWriter;
  /** The slot has been switched to one of this baton's generations (port mode). */
  private switched = false;

  /** `resuming`: this baton replaced its own program; the generation in the state file is its own. */
  constructor(options: SteeringOptions, listeners: Listener[], log: Logger, resuming: boolean) {
    this.options = options;
    this.log = log;
    this.state = new StateWriter(options.stateDir);
    const own = new Set(listeners.map((l) => fstatSync(l.fd).ino));
    const state = readState(options.stateDir);
    const owner = state && state.pid !== process.pid ? state.pid : undefined;
    if (owner && startTime(owner) !== undefined && /baton|node/.test(cmdline(owner))) {
      throw alreadyRunning(`steering ${options.name} belongs to a running baton`, owner, 'choose another --name');
    }
    // The orphan is signalled at the end: it must be the process this baton's generation was, not just its pid.
    const g = state?.generation;
    const was = (r: Retiring) => startedAs(r.pid, r.starttime, [`BATON_GENERATION=${r.number}`]);
    const orphanPid = !resuming && g && was(g) ? g : undefined;
    // Its own state after a self-upgrade; a dead baton's names what to retire. After a self-upgrade, those that are
    // not baton's children are a dead baton's that the program before was retiring: this one retires them.
    this.retiring = (state?.retiring ?? []).filter(was);
    if (resuming) this.serving = g;
    for (const r of this.retiring) {
      if (!resuming || parentPid(r.pid) !== process.pid) this.leftOver.push({ ...r, worker: 0, startedAt: Date.now() });
    }
    const { name, bpffs, force } = options;
    const warnings = resuming ? [] : refuseSplit({ name, bpffs, force, ...(orphanPid && { serving: orphanPid }) });
    const orphanInodes = orphanPid
      ? listeningSockets()
          .filter((s) => s.port === orphanPid.port)
          .map((s) => s.inode)
      : [];
    const shadows = shadowed(options.rules, new Set([...own, ...orphanInodes]));
    if (shadows.length > 0) {
      // Pins left by an earlier run steer these ports already: refusing would give the listener nothing back.
      const restart = Steering.pinned(name, bpffs);
      if (!options.force && !restart) {
        throw new BatonError(
          'ERR_BATON_SHADOW',
          `--steer would take connections from another process listening on ${shadows.join(', ')}`,
          'stop that process, narrow the rule, or pass --force to steer anyway',
        );
      }
      const why = restart ? ' (the pins of an earlier run steer it already)' : '';
      log.event('warning', { message: `steering over another process's listener: ${shadows.join(', ')}${why}` });
    }
    this.steering = Steering.open(options.name, options.bpffs, options.rules);
    try {
      if (options.sharesListener && !resuming) this.steering.setSlot(listeners[0]!.fd);
      if (orphanPid && !options.sharesListener && this.steering.reused) {
        const listening = new Set(orphanInodes.map((i) => `socket:[${i}]`));
        const fd = pullSocket(orphanPid.pid, () => true, { among: (socket) => listening.has(socket), strict: true });
        if (fd !== undefined) {
          const { number, pid, starttime } = orphanPid;
          this.orphan = { number, worker: 0, pid, starttime, startedAt: Date.now(), held: fd };
          this.serving = { number, pid, starttime };
          log.event('orphan', {
            generation: orphanPid.number,
            pid: orphanPid.pid,
            message: 'a generation left serving by a previous baton; it is retired once the next one is active',
          });
        }
      }
    } catch (err) {
      this.steering.close(false);
      throw err;
    }
    for (const o of this.leftOver) {
      const message = 'a generation a previous baton was retiring; it is retired once the next one is active';
      log.event('orphan', { generation: o.number, pid: o.pid, message });
    }
    for (const message of warnings) log.event('warning', { message });
    if (!this.orphan) this.saveState();
    this.status(this.steering.reused ? 'steering-reused' : 'steering');
  }

  /**
   * baton's pid in every mode (so that a second baton and steer clean see it); in port mode the serving generation
   * and those that left the slot and still run.
   */
  private saveState(port?: number): void {
    const gen = this.serving;
    this.state.write({
      name: this.options.name,
      pid: process.pid,
      ...(gen ? { generation: { ...gen, port: port ?? 0 } } : {}),
      ...(this.retiring.length > 0 ? { retiring: this.retiring } : {}),
    });
  }

  /** A generation became active: one that holds its own listener (port handover) puts it in the slot. */
  activate(gen: { number: number; pid: number; starttime: string; held?: Held }): void {
    if (!gen.held) return;
    const before = this.serving;
    this.serving = { number: gen.number, pid: gen.pid, starttime: gen.starttime };
    // Who leaves the slot now served a moment ago: only the earlier ones are looked up (a reader of the state
    // checks each one anyway), to keep the list to those that still run.
    const earlier = this.retiring.filter((r) => r.pid !== gen.pid && alive(r.pid, r.starttime));
    this.retiring = before && before.pid !== gen.pid ? [before, ...earlier] : earlier;
    // Written before the switch: a baton killed between the two leaves a state naming the generation the slot is
    // about to hold, which a restarted baton takes over; the other way round, nothing would name it.
    try {
      this.saveState(gen.held.port);
    } catch (err) {
      // A full /run: the switch goes on, and a restart takes over less.
      this.log.event('warning', { message: `steering state in ${this.options.stateDir}: ${(err as Error).message}` });
    }
    const t0 = performance.now();
    this.steering.setSlot(gen.held.fd);
    const us = Math.round((performance.now() - t0) * 1000);
    this.switched = true;
    this.status('switch', { generation: gen.number, pid: gen.pid, switch_us: us });
  }

  snapshot(): {
    name: string;
    pins: string;
    slot: string;
    rules: Array<{ rule: string; steered: number; nosock: number }>;
  } {
    const slot = this.steering.slotCookie() ?? 'empty';
    return { name: this.options.name, pins: this.steering.dir, slot, rules: this.steering.counters() };
  }

  /** One line with the rules, the slot's socket and the counters. */
  status(event: string, fields: Record<string, string | number> = {}): void {
    const counters = this.steering
      .counters()
      .map((c) => `${c.rule} steered=${c.steered} nosock=${c.nosock}`)
      .join('; ');
    const slot = this.steering.slotCookie() ?? 'empty';
    this.log.event(event, { ...fields, name: this.options.name, pins: this.steering.dir, slot, rules: counters });
  }

  /**
   * A clean stop: removes pins and state unless --keep-steering. An orphan that still serves through
   * them (the takeover never switched the slot) keeps them, and its state, for the next baton; one
   * that no longer does is stopped with the generations. `orphanLeft`: its retirement never began.
   */
  close(orphanLeft: boolean): void {
    this.status('steering-stop');
    const o = orphanLeft ? this.orphan : undefined;
    if (o && !this.switched) {
      this.log.event('steering-kept', {
        message:
          `generation ${o.number} (pid ${o.pid}) of a previous baton still serves through ${this.steering.dir}; ` +
          'pins and state are left for the next baton',
      });
      this.steering.close(true);
      return;
    }
    if (o && alive(o.pid, o.starttime)) signalGroup(o.pid, this.options.stopSignal);
    this.steering.close(this.options.keepSteering);
    if (!this.options.keepSteering) removeState(this.options.stateDir);
  }
}
