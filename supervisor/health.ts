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
  private readonly watched = new Map<Generation, Set<(f: Failure) => void>>();

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
    const waiting = new Set<(f: Failure) => void>();
    this.watched.set(gen, waiting);
    void this.loop(gen, waiting);
  }

  /** Resolves with the next failure of `gen`'s probe (never, without --health). */
  nextFailure(gen: Generation): Promise<Failure> {
    return new Promise((resolve) => this.watched.get(gen)?.add(resolve));
  }

  /** Until `gen` is no longer active; it leaves `watched` in the same step as it returns (watch() may start anew). */
  private async loop(gen: Generation, waiting: Set<(f: Failure) => void>): Promise<void> {
    const stop = new AbortController();
    void gen.exited.then(() => stop.abort());
    let inRow = 0;
    try {
      for (;;) {
        const spec = this.config.health;
        if (!spec || gen.state !== 'active' || stop.signal.aborted) return;
        const failed = await this.run(gen, spec, stop.signal);
        if (stop.signal.aborted || gen.state !== 'active') return;
        inRow = failed === undefined ? 0 : inRow + 1;
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
      if (this.watched.get(gen) === waiting) this.watched.delete(gen);
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
