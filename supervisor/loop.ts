import type { Hooks } from './hooks.js';
import { closeFd } from './sys/fd.js';
import { settle, type Trial } from './trial.js';
import { Requests, refusal, type UpgradeResult, type Waiter } from './upgrade.js';
import { refill, rescale, runWave } from './wave.js';
import type { WaveParts } from './wave-parts.js';

export const STOPPING = 'baton is stopping';

/** A canary window to go on with (after a failed execve, or in the program it was carried to), and who waits. */
export interface Carried {
  trial: Trial;
  waiters: Waiter[];
}

/**
 * The one loop that starts processes: upgrades (and the rest of one a self-upgrade carried), crash restarts and
 * scaling, one at a time. At most one upgrade in flight; requests arriving meanwhile coalesce into one follow-up.
 */
export class Loop {
  readonly requests = new Requests();
  carried?: Carried;
  /** The loop is running (an upgrade, a restart or a scaling), or held by a self-upgrade. */
  private busy = false;
  private scaleBy = 0;
  /** Aborted when a self-upgrade carries the canary window in flight on to the next program. */
  private carry = new AbortController();
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly rooms: WaveParts,
    private readonly hooks: Hooks,
  ) {}

  /** An upgrade is in flight or its window is being carried (a request now coalesces into the next). */
  get running(): boolean {
    return this.busy || this.carried !== undefined;
  }

  /** Runs `job` (generation 1) as the loop's only work; then the loop goes on with what came meanwhile. */
  async first<T>(job: () => Promise<T>): Promise<T> {
    this.busy = true;
    try {
      return await job();
    } finally {
      this.done();
    }
  }

  /** Once idle: held for a self-upgrade's execve. */
  hold(): void {
    this.busy = true;
  }

  /** The self-upgrade did not happen: the loop goes on (with the canary window it would have carried). */
  release(): void {
    this.carry = new AbortController();
    this.busy = false;
    void this.run();
  }

  scale(delta: number): void {
    this.scaleBy += delta;
    void this.run();
  }

  /**
   * Resolves once the loop is not running. `carry`: a canary window in flight is not waited out but carried on
   * (a self-upgrade into a build that takes it); the loop starts nothing until release().
   */
  idle(carry = false): Promise<void> {
    if (carry) this.carry.abort();
    return this.busy ? new Promise((resolve) => this.idleWaiters.push(resolve)) : Promise.resolve();
  }

  /** baton stops: whoever waits for an upgrade hears why none comes. */
  refuseAll(serving: number | undefined): void {
    for (const w of [...this.requests.take(), ...(this.carried?.waiters ?? [])]) w.settle(refusal(STOPPING, serving));
  }

  /** A `reload --wait` client a self-upgrade carried over: the answer goes to its connection, `fd`. */
  answering(fd: number): Waiter {
    return { settle: (r) => (this.hooks.answer ? this.hooks.answer(fd, r) : closeFd(fd)), fd: () => fd };
  }

  async run(): Promise<void> {
    const { rooms } = this;
    if (rooms.stopping() || this.busy) return;
    this.busy = true;
    try {
      const more = () => this.carried || this.requests.wanted || this.scaleBy !== 0 || rooms.slots.hasDue();
      while (!rooms.stopping() && !this.carry.signal.aborted && more()) {
        if (this.carried) {
          const { trial, waiters } = this.carried;
          await this.upgrade(waiters, (carry) => settle(rooms, trial, carry));
        } else if (this.scaleBy !== 0) {
          rescale(rooms, rooms.slots.length + this.scaleBy);
          this.scaleBy = 0;
        } else if (this.requests.wanted) await this.upgrade(this.requests.take(), (c) => runWave(rooms, c));
        else await Promise.all(rooms.slots.takeDue().map((slot) => refill(rooms, slot)));
      }
    } catch (err) {
      rooms.log.event('warning', { message: `upgrade loop: ${(err as Error).message}` });
    } finally {
      this.done();
    }
  }

  private done(): void {
    this.busy = false;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /** One upgrade (or the rest of a carried one) for `waiters`; a canary window carried on keeps them waiting. */
  private async upgrade(waiters: Waiter[], wave: (carry: AbortSignal) => Promise<UpgradeResult | Trial | undefined>) {
    this.carried = undefined;
    for (const w of waiters) w.began?.();
    let result: UpgradeResult | undefined;
    try {
      const end = await wave(this.carry.signal);
      if (end && 'switched' in end) {
        this.carried = { trial: end, waiters };
        return;
      }
      result = end;
      if (result) this.hooks.upgraded?.(result);
    } finally {
      const why = this.rooms.stopping() ? STOPPING : 'the upgrade failed inside baton; see its log';
      if (!this.carried) for (const w of waiters) w.settle(result ?? refusal(why, this.rooms.slots.newest));
    }
  }
}
