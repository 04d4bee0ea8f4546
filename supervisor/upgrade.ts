import { track } from './children.js';

/** How one upgrade ended, for `baton reload --wait`, `baton status` and systemd. */
export interface UpgradeResult {
  ok: boolean;
  /** The generation this upgrade started (0 if none was started). */
  generation: number;
  /** The generation serving afterwards, if any. */
  serving?: number;
  reason?: string;
  requestedAt: string;
  /** From the start of the upgrade to its end, and the new generation's time to ready. */
  ms: number;
  readyMs?: number;
}

/** The last upgrades (not crash restarts), oldest first, for `baton status`. */
export class History {
  static readonly SIZE = 10;
  private readonly items: UpgradeResult[];

  constructor(items: UpgradeResult[] = []) {
    this.items = items.slice(-History.SIZE);
  }

  add(r: UpgradeResult): void {
    this.items.push(r);
    if (this.items.length > History.SIZE) this.items.shift();
  }

  list(): UpgradeResult[] {
    return [...this.items];
  }
}

/** --check: a shell command whose non-zero exit aborts the upgrade; its output becomes the reason. */
export async function preflight(command: string, timeout: number): Promise<string | undefined> {
  const { execa } = await import('execa');
  const run = execa(command, { shell: true, all: true, reject: false, timeout, stdin: 'ignore' });
  track(run.pid, run);
  const r = await run;
  if (r.exitCode === 0) return undefined;
  const why = r.timedOut ? `timed out after ${timeout}ms` : `exit ${r.exitCode ?? r.signal}`;
  return `preflight failed (${why}): ${String(r.all ?? '').trim().split('\n').slice(-5).join(' | ')}`;
}
