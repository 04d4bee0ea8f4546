import { connectionsClosed, queueEmptied } from './accept-queue.js';
import type { Config } from './config.js';
import type { Generation } from './generation.js';

/** How often an old generation kept for an active one that dropped its listener is looked at again. */
const RECHECK_MS = 1000;

/**
 * Old generations on their way out: each waits out --drain (with a listener of its own, in port mode or under
 * --steer, also until its accept queue is empty: closing a listener resets what waits in it), then gets the stop
 * signal. Every retirement (a wave, a scale-down) gets the next
 * number; --max-draining counts retirements, oldest first, not processes.
 */
export class Retirement {
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly retiredIn = new Map<Generation, number>();
  private last = 0;

  /**
   * `config`: read at each use (an upgrade under a new --config changes it). `serving`: the active generations
   * hold every listener (reporting those that dropped one).
   */
  constructor(
    private readonly config: Pick<Config, 'drain' | 'maxDraining'>,
    private readonly stopping: () => boolean,
    private readonly serving: () => boolean = () => true,
  ) {}

  /** `gens` are retired together (one wave, one scale-down, or what a self-upgrade carried over). */
  retire(gens: Generation[]): void {
    const n = ++this.last;
    for (const g of gens) this.retiredIn.set(g, n);
  }

  /** Retirements are not carried across a self-upgrade: each draining generation counts as one, oldest first. */
  carry(adopted: Generation[]): void {
    const draining = adopted.filter((g) => g.state === 'draining');
    for (const n of [...new Set(draining.map((g) => g.number))].sort((a, b) => a - b)) {
      this.retire(draining.filter((g) => g.number === n));
    }
  }

  /** A failed wave gives `gen` its slot back; or `gen` has exited. */
  forget(gen: Generation): void {
    this.retiredIn.delete(gen);
  }

  /**
   * After --drain, the stop signal; first whatever the handover waits for (port: the old listener's queue
   * empty). While an active generation holds fewer listeners than it serves from, the old one serves on,
   * checked again every --drain (at least RECHECK_MS). With no time left (`ms` 0) the stop signal goes now,
   * where the handover waits for nothing: a self-upgrade right after cannot call it off.
   */
  drainLater(old: Generation, ms = this.config.drain): void {
    if (ms <= 0) {
      this.stopDrained(old);
      return;
    }
    const t = setTimeout(() => {
      this.timers.delete(t);
      this.stopDrained(old);
    }, ms);
    this.timers.add(t);
  }

  /**
   * A failed wave's generation, out of the slots. With a listener of its own (port mode, a socket per generation)
   * it gets nothing new once the steering slot is switched back: it is stopped when it holds no connection and
   * nothing waits in its queue (at most --drain), since a server that exits at once on its stop signal resets what
   * it is still answering. One that shares baton's listeners would accept on: it is stopped now.
   */
  dropFailed(gen: Generation): void {
    const held = gen.held;
    if (!held) this.stopDrained(gen);
    else void connectionsClosed(gen.pid, held.fd, this.config.drain, () => gen.alive).then(() => this.stopDrained(gen));
  }

  private stopDrained(old: Generation): void {
    // Only a live generation is waited for: once it has exited, baton has closed what it held of it.
    const held = old.alive ? old.held : undefined;
    const before = held && queueEmptied(held.fd, old.release.killTimeout, () => old.alive);
    const stop = () => {
      if (this.stopping() || !old.alive) return;
      if (!this.serving()) return this.drainLater(old, Math.max(this.config.drain, RECHECK_MS));
      void old.stop();
    };
    if (before === undefined) stop();
    else void before.catch(() => {}).then(stop);
  }

  /** At most --max-draining retirements alive: the processes of the oldest beyond that are killed. */
  cap(live: Iterable<Generation>): void {
    const draining = [...live].filter((g) => g.state === 'draining');
    const of = (g: Generation) => this.retiredIn.get(g) ?? 0;
    const waves = [...new Set(draining.map(of))].sort((a, b) => a - b);
    const excess = new Set(waves.slice(0, Math.max(0, waves.length - this.config.maxDraining)));
    const reason = `more than --max-draining ${this.config.maxDraining} generations draining`;
    for (const g of draining) if (excess.has(of(g))) void g.kill(reason, 'max-draining');
  }

  /**
   * baton stops: every generation gets the stop signal now (the active ones drain first); resolves with them once
   * all exited.
   */
  async stopAll(live: Iterable<Generation>): Promise<Generation[]> {
    const gens = [...live];
    for (const g of gens) if (g.state === 'active') g.to('draining');
    await Promise.all(gens.map((g) => g.stop()));
    return gens;
  }

  /** Calls off every drain timer (stop, self-upgrade). */
  pause(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}
