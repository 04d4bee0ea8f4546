import type { Helpers } from './helpers.js';
import type { Release } from './release.js';

/** When a wave was rolled back: a new worker failed before it was ready, or died in the canary window after. */
export type Rollback = 'before-ready' | 'canary';

/** How one upgrade ended, for `baton reload --wait`, `baton status` and systemd. */
export interface UpgradeResult {
  ok: boolean;
  /** The generation this upgrade started (0 if none was started). */
  generation: number;
  /** The generation serving afterwards, if any. */
  serving?: number;
  reason?: string;
  /** How to fix what refused the upgrade, where baton knows. */
  hint?: string;
  requestedAt: string;
  /** From the start of the upgrade to its end, and the new generation's time to ready. */
  ms: number;
  readyMs?: number;
  /** Set when the new generation was started and rolled back. */
  rollback?: Rollback;
  /** Set when nothing was started: the --check preflight failed, or the release or options could not be used. */
  refused?: 'check' | 'plan';
  /** The options a changed --config gave this upgrade, one line each. */
  changes?: string[];
}

/** A request that no upgrade serves (baton is stopping, or the loop failed): nothing was started. */
export function refusal(reason: string, serving: number | undefined): UpgradeResult {
  const requestedAt = new Date().toISOString();
  return { ok: false, generation: 0, reason, requestedAt, ms: 0, ...(serving ? { serving } : {}) };
}

/** Who waits for an upgrade's outcome; a `reload --wait` client also names its connection (while it waits). */
export interface Waiter {
  settle(r: UpgradeResult): void;
  /** The fd of the connection the answer goes to: a self-upgrade carries it on (undefined once it is closed). */
  fd?(): number | undefined;
  /** The upgrade that serves this request starts (or goes on in the program a self-upgrade carried it to). */
  began?(): void;
}

/** The connections of `waiters` still open: a self-upgrade hands them to the next program, which answers them. */
export function clientFds(waiters: Waiter[]): number[] {
  return waiters.flatMap((w) => w.fd?.() ?? []);
}

/**
 * Upgrade requests that no upgrade has started for yet. They coalesce: the next upgrade serves
 * every request waiting when it starts; later ones wait for the one after.
 */
export class Requests {
  private waiting?: Waiter[];

  /** An upgrade is wanted and has not started yet. */
  get wanted(): boolean {
    return this.waiting !== undefined;
  }

  /** Who waits now (for capture: their connections go on to the next program). */
  get waiters(): Waiter[] {
    return [...(this.waiting ?? [])];
  }

  /** Resolves with the outcome of the upgrade that serves this request; `client`: who asked, if a client did. */
  add(client: Omit<Waiter, 'settle'> = {}): Promise<UpgradeResult> {
    return new Promise((settle) => this.want([{ ...client, settle }]));
  }

  /** An upgrade is wanted, by `waiters` (none: one held across a self-upgrade; or clients it carried). */
  want(waiters: Waiter[] = []): void {
    this.waiting = [...(this.waiting ?? []), ...waiters];
  }

  /** The requests the upgrade starting now serves: settle them with its outcome. */
  take(): Waiter[] {
    const waiters = this.waiting ?? [];
    this.waiting = undefined;
    return waiters;
  }
}

/** The last upgrades (not crash restarts), oldest first, for `baton status`, and the count of those that failed. */
export class History {
  static readonly SIZE = 10;
  private readonly items: UpgradeResult[];
  private failed: number;

  constructor(items: UpgradeResult[] = [], failures = 0) {
    this.items = items.slice(-History.SIZE);
    this.failed = failures;
  }

  /** Upgrades that were rolled back (or refused by --check). */
  get failures(): number {
    return this.failed;
  }

  /** Counts one more failed upgrade; returns the count. */
  fail(): number {
    return ++this.failed;
  }

  add(r: UpgradeResult): void {
    this.items.push(r);
    if (this.items.length > History.SIZE) this.items.shift();
  }

  list(): UpgradeResult[] {
    return [...this.items];
  }
}

/**
 * --check: a shell command whose non-zero exit aborts the upgrade; its output becomes the reason. Its process
 * group is killed after `timeout`, or when baton stops (undefined then: the upgrade is moot).
 */
export async function preflight(
  helpers: Helpers,
  command: string,
  timeout: number,
  release: Release,
): Promise<string | undefined> {
  const r = await helpers.run('check', command, {
    timeoutMs: timeout,
    output: true,
    cwd: release.dir,
    env: release.env,
  });
  if (r.code === 0 || r.stopped) return undefined;
  const why = r.timedOut
    ? `timed out after ${timeout}ms (--check-timeout); its process group was killed`
    : r.code === null
      ? `killed by ${r.signal}`
      : `exit ${r.code}`;
  const last = r.output.trim().split('\n').slice(-5).join(' | ');
  return `preflight failed (${why})${last ? `: ${last}` : ''}`;
}
