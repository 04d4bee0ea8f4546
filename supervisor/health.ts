import { setTimeout as sleep } from 'node:timers/promises';
import type { HealthSpec } from './config.js';
import { parseDuration, wholeNumber } from './duration.js';
import { usageError } from './errors.js';
import type { Generation } from './generation.js';
import type { Helpers } from './helpers.js';
import type { Logger } from './log.js';
import { probeEnv } from './ready/probe.js';
import type { Slots } from './slots.js';

const HEALTH_HINT = 'e.g. --health "probe:curl -fsS http://127.0.0.1:8080/health"';

/** --health probe:<command>, with its interval (more than 0) and failures in a row (at least 1). */
export function parseHealth(text: string, interval: string, failures: string | number): HealthSpec {
  if (!text.startsWith('probe:') || text.length === 6) throw usageError(`unknown --health "${text}"`, HEALTH_HINT);
  const intervalMs = parseDuration('health-interval', interval);
  if (intervalMs <= 0) throw usageError('--health-interval must be more than 0', 'e.g. --health-interval 1s');
  const inRow = wholeNumber('health-failures', failures, 1, undefined, '', 'e.g. --health-failures 3');
  return { command: text.slice(6), intervalMs, failures: inRow };
}

/** The probe loop of one process: who waits for its next failure, how to end it, and its end. */
interface Watch {
  waiting: Set<(f: Failure) => void>;
  stop: AbortController;
  ended: Promise<void>;
}

/** A failure of one run: why, and how many in a row. */
export interface Failure {
  reason: string;
  inRow: number;
}

/**
 * --health: a probe for every active process, every --health-interval from the moment it is active, each run
 * bounded by the interval (a probe that hangs fails). Every failure is logged (`unhealthy`) and told to whoever
 * waits on that process (the canary window). --health-failures in a row count as a crash: the process is replaced
 * as after one (its slot restarts after the backoff) and gets the stop signal; not while it is on trial (its
 * wave's canary window answers for it).
 */
export class Health {
  private readonly watched = new Map<Generation, Watch>();
  /** Failures in a row of each process probed (a self-upgrade carries them on). */
  private readonly inRows = new Map<Generation, number>();

  /** `config`: read at each run (an upgrade under a new --config changes it). */
  constructor(
    private readonly config: { health?: HealthSpec },
    private readonly helpers: Helpers,
    private readonly log: Logger,
    private readonly slots: Pick<Slots, 'onTrial' | 'lost'>,
  ) {}

  /** `gen` became active: probed from now on, until it is no longer active or baton stops. */
  watch(gen: Generation): void {
    if (!this.config.health || this.watched.has(gen)) return;
    const w = { waiting: new Set<(f: Failure) => void>(), stop: new AbortController(), ended: Promise.resolve() };
    this.watched.set(gen, w);
    w.ended = this.loop(gen, w);
  }

  /** Resolves with the next failure of `gen`'s probe (never, without --health). */
  nextFailure(gen: Generation): Promise<Failure> {
    return new Promise((resolve) => this.watched.get(gen)?.waiting.add(resolve));
  }

  /** `gen`'s failures in a row (0 when its last run passed). */
  inRow(gen: Generation): number {
    return this.inRows.get(gen) ?? 0;
  }

  /** A self-upgrade took over `gen` with `n` failures in a row: the count goes on from there. */
  carried(gen: Generation, n: number): void {
    if (n > 0) this.inRows.set(gen, n);
  }

  /** A self-upgrade: every probe ends now (its process is killed and reaped); watch() starts them again. */
  async pause(): Promise<void> {
    const watches = [...this.watched.values()];
    for (const w of watches) w.stop.abort();
    await Promise.all(watches.map((w) => w.ended));
  }

  /** Until `gen` is no longer active; it leaves `watched` in the same step as it returns (watch() may start anew). */
  private async loop(gen: Generation, w: Watch): Promise<void> {
    const { waiting, stop } = w;
    void gen.exited.then(() => stop.abort());
    try {
      for (;;) {
        const spec = this.config.health;
        if (!spec || gen.state !== 'active' || stop.signal.aborted) return;
        const failed = await this.run(gen, spec, stop.signal);
        if (stop.signal.aborted || gen.state !== 'active') return;
        const inRow = failed === undefined ? 0 : this.inRow(gen) + 1;
        if (inRow > 0) this.inRows.set(gen, inRow);
        else this.inRows.delete(gen);
        if (failed !== undefined) {
          const reason = `failed its health probe (${failed})${inRow > 1 ? `, ${inRow} times in a row` : ''}`;
          this.log.event('unhealthy', { generation: gen.number, worker: gen.worker, pid: gen.pid, message: reason });
          for (const tell of waiting) tell({ reason, inRow });
          waiting.clear();
          if (inRow >= spec.failures && !this.slots.onTrial.has(gen)) return this.replace(gen, reason);
        }
        await sleep(spec.intervalMs, undefined, { signal: stop.signal }).catch(() => {});
      }
    } finally {
      if (this.watched.get(gen) === w) this.watched.delete(gen);
      if (!gen.alive || gen.state !== 'active') this.inRows.delete(gen);
    }
  }

  private replace(gen: Generation, reason: string): void {
    this.slots.lost(gen, `generation ${gen.number} ${reason}`);
    gen.to('draining');
    void gen.stop();
  }

  /** One run: undefined when it passed, else why not. */
  private async run(gen: Generation, spec: HealthSpec, signal: AbortSignal): Promise<string | undefined> {
    const env = probeEnv({ pid: gen.pid, generation: gen.number, worker: gen.worker, release: gen.release });
    const r = await this.helpers.run('health', spec.command, {
      env,
      signal,
      generation: gen.number,
      cwd: gen.release.dir,
      timeoutMs: spec.intervalMs,
    });
    if (r.code === 0 || r.stopped) return undefined;
    if (r.timedOut) return `no answer within ${spec.intervalMs}ms`;
    return r.code === null ? `killed by ${r.signal}` : `exit ${r.code}`;
  }
}
