import { backoff } from './config.js';
import type { Generation } from './generation.js';
import type { Logger } from './log.js';
import type { SteeringPlane } from './steering/plane.js';

/** One worker slot: the process serving in it, its crashes in a row and its pending restart. */
interface Slot {
  gen?: Generation;
  crashes: number;
  restart?: NodeJS.Timeout;
  /** The backoff its pending restart was given (ms), until a process takes the slot. */
  backoff?: number;
}

/** The n-th crash in a row waits 1.5^(n-1) s, at most 30 s. */
export function backoffDelay(crashes: number): number {
  return Math.min(backoff.max, Math.round(backoff.base * backoff.factor ** (crashes - 1)));
}

/**
 * The worker slots (--workers): who serves in each, crash backoff per slot, and which empty slots
 * are due for a restart. `onDue` wakes the supervisor's loop when a restart falls due.
 */
export class Slots {
  /** The process that became active last, in any slot: its status is baton's after an unclean stop (stopOutcome). */
  lastActive?: Generation;
  /** How long the last activate() took to switch the steering slot (ms; 0 without --steer). */
  lastSwitchMs = 0;
  private readonly slots: Slot[];
  private readonly due = new Set<number>();
  /** A wave's new workers in their canary window: an exit there is the wave's to answer (a rollback), not a crash. */
  readonly onTrial = new Set<Generation>();
  private readonly log: Logger;
  private readonly plane?: SteeringPlane;
  private readonly onDue: () => void;
  private readonly onActive: (gen: Generation) => void;

  /** `onDue`: a restart fell due; `onActive`: a process took a slot (it serves from now on). */
  constructor(o: {
    count: number;
    crashes?: number[];
    log: Logger;
    plane?: SteeringPlane;
    onDue: () => void;
    onActive?: (gen: Generation) => void;
  }) {
    this.slots = Array.from({ length: o.count }, (_, i) => ({ crashes: o.crashes?.[i] ?? 0 }));
    this.log = o.log;
    this.plane = o.plane;
    this.onDue = o.onDue;
    this.onActive = o.onActive ?? (() => {});
  }

  get length(): number {
    return this.slots.length;
  }

  at(slot: number): Generation | undefined {
    return this.slots[slot]?.gen;
  }

  /** Slots serving, in order: [slot, generation]. */
  serving(): Array<[number, Generation]> {
    return this.slots.flatMap((s, i) => (s.gen ? [[i, s.gen] as [number, Generation]] : []));
  }

  /** The newest generation serving in any slot. */
  get newest(): number | undefined {
    const numbers = this.serving().map(([, g]) => g.number);
    return numbers.length ? Math.max(...numbers) : undefined;
  }

  crashes(): number[] {
    return this.slots.map((s) => s.crashes);
  }

  /** `gen` serves in `slot` from now on; any restart due there is called off. Returns who served before. */
  take(slot: number, gen: Generation): Generation | undefined {
    const s = this.slots[slot]!;
    const old = s.gen;
    s.gen = gen;
    this.lastActive = gen;
    clearTimeout(s.restart);
    [s.restart, s.backoff] = [undefined, undefined];
    this.onActive(gen);
    return old;
  }

  /**
   * `gen` is ready and takes `slot` (in port mode its listener takes the steering slot); who served drains, for
   * `drain` ms (an upgrade's; only a wave replaces a process that serves).
   */
  activate(gen: Generation, slot: number, upgrade?: { ms: number; drain: number }): Generation | undefined {
    gen.to('active');
    const old = this.take(slot, gen);
    const switching = performance.now();
    this.plane?.activate(gen);
    this.lastSwitchMs = performance.now() - switching;
    this.log.event('active', { generation: gen.number, worker: slot, pid: gen.pid, upgrade: upgrade?.ms });
    if (old) {
      old.to('draining');
      this.log.event('draining', { generation: old.number, worker: slot, pid: old.pid, drain: upgrade?.drain });
    }
    return old;
  }

  /** A failed wave gives `old` (draining) its slot back; in port mode the steering slot first, before the new stops. */
  regain(slot: number, old: Generation): void {
    old.to('active');
    this.take(slot, old);
    this.plane?.activate(old);
    this.log.event('regained', { generation: old.number, worker: slot, pid: old.pid });
  }

  vacate(slot: number): void {
    this.slots[slot]!.gen = undefined;
  }

  /**
   * `gen` exited (not stopped by baton): if it served in a slot, the slot is empty and restarts after
   * the backoff. One that served a minute or more before it crashed first resets its slot's count.
   */
  lost(gen: Generation, reason: string): void {
    const slot = this.slots.findIndex((s) => s.gen === gen);
    if (slot < 0) return;
    this.vacate(slot);
    if (this.onTrial.has(gen)) return;
    if (performance.now() - (gen.activeSince ?? 0) >= backoff.stableAfter) this.slots[slot]!.crashes = 0;
    this.crashed(slot, reason);
  }

  /** Slot `slot` has no process: restart it after the backoff of its crashes in a row. */
  crashed(slot: number, reason: string): void {
    const s = this.slots[slot]!;
    const n = ++s.crashes;
    const delay = backoffDelay(n);
    s.backoff = delay;
    this.log.event('restart', { worker: slot, message: reason, in: delay, crashes: n });
    if (n % backoff.loopReport === 0) {
      const others = this.serving().length;
      const rest = others ? `${others} other worker(s) serve on` : 'nothing serves until it starts';
      const message = `worker ${slot} crashed ${n} times in a row; ${rest}`;
      this.log.event('crash-loop', { worker: slot, message, crashes: n });
    }
    clearTimeout(s.restart);
    s.restart = setTimeout(() => {
      s.restart = undefined;
      this.due.add(slot);
      this.onDue();
    }, delay);
  }

  /** Empty slots whose restart is due (taken: each is reported once). */
  takeDue(): number[] {
    const slots = [...this.due].filter((s) => s < this.slots.length && !this.slots[s]!.gen);
    this.due.clear();
    return slots;
  }

  /** The longest backoff of a restart pending now (ms), 0 if none is. */
  backoffMs(): number {
    return Math.max(0, ...this.slots.map((s) => s.backoff ?? 0));
  }

  hasDue(): boolean {
    return this.due.size > 0;
  }

  /**
   * Grows or shrinks to `target` slots (at least 1): a new slot is due for a start at once; a removed
   * slot's restart is called off. Returns the processes of the removed slots, with their slot.
   */
  resize(target: number): Array<[number, Generation]> {
    const removed: Array<[number, Generation]> = [];
    while (this.slots.length < Math.max(1, target)) {
      this.slots.push({ crashes: 0 });
      this.due.add(this.slots.length - 1);
    }
    while (this.slots.length > Math.max(1, target)) {
      const s = this.slots.pop()!;
      clearTimeout(s.restart);
      this.due.delete(this.slots.length);
      if (s.gen) removed.push([this.slots.length, s.gen]);
    }
    return removed;
  }

  /** Calls off every pending restart (stop, self-upgrade). */
  clearRestarts(): void {
    for (const s of this.slots) {
      clearTimeout(s.restart);
      [s.restart, s.backoff] = [undefined, undefined];
    }
  }
}
