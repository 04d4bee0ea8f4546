// The bad-release benchmark: the same release that dies 1 s after it starts, shipped under the same load with
// baton (its canary window), pm2 reload and stop-start. What counts: requests that failed in the 10 s after the
// deploy, and which release answers at the end (generation=1 good, 2 bad; see server.mjs).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { baton, plain, pm2, type Scenario, sleep, startLoad } from './scenarios.js';

/** How long after the deploy failures are counted. */
export const BAD_WINDOW_MS = 10_000;
/** The last part of that window, whose answers say who serves at the end. */
const END_MS = 1000;

export interface BadRelease {
  scenario: string;
  /** Requests sent in the window after the deploy, and those that failed, by kind. */
  requests: number;
  failed: number;
  failures: Record<string, number>;
  /** Releases that answered in the window's last second (1 good, 2 bad), in order. */
  serving: number[];
}

/** Runs each supervisor through one bad deploy; `guard` holds the machine-wide load lock around each. */
export async function badRelease(guard: <T>(fn: () => Promise<T>) => Promise<T>, log: (l: string) => void) {
  const dir = mkdtempSync(join(tmpdir(), 'baton-bench-bad-'));
  const marker = join(dir, 'bad');
  // Set before the scenarios exist: pm2's daemon takes the environment of the first `pm2 start`.
  process.env.BENCH_BAD = marker;
  const out: BadRelease[] = [];
  try {
    // The canary window (--drain) must outlast the bad release's 1 s.
    const sides: Scenario[] = [plain('stop-start'), pm2(), baton('baton pidfd', 'pidfd', false, '3s')];
    for (const s of sides) {
      log(`bad release: ${s.name}`);
      rmSync(marker, { force: true });
      out.push(await guard(() => deploy(s, marker)));
    }
  } finally {
    delete process.env.BENCH_BAD;
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

async function deploy(s: Scenario, marker: string): Promise<BadRelease> {
  const port = await s.start('bad', 1);
  const load = await startLoad(port, false, 60_000);
  await sleep(500);
  writeFileSync(marker, '');
  const at = performance.now() - load.startedAt;
  // baton's upgrade() waits for the old generation's stop, which a rollback never sends: not awaited here.
  const upgrade = s.upgrade().catch(() => undefined);
  await sleep(BAD_WINDOW_MS);
  const r = await load.stop();
  await s.stop();
  await upgrade;
  const window = (r.samples ?? []).filter(([t]) => t >= at && t < at + BAD_WINDOW_MS);
  const failures: Record<string, number> = {};
  for (const [, , outcome] of window) if (outcome !== 'ok') failures[outcome] = (failures[outcome] ?? 0) + 1;
  const end = window.filter(([t, , outcome]) => outcome === 'ok' && t >= at + BAD_WINDOW_MS - END_MS);
  return {
    scenario: s.name,
    requests: window.length,
    failed: Object.values(failures).reduce((a, b) => a + b, 0),
    failures,
    serving: [...new Set(end.map(([, , , g]) => g))].sort((a, b) => a - b),
  };
}
