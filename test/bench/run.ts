// npm run bench [-- --quick]: zero downtime, overhead, handover time and memory of baton against the
// server alone, stop-then-start and pm2, side by side in one run; writes docs/benchmarks.md,
// docs/benchmarks/results.json and SVG plots. Loopback and namespaces of its own only; every load
// is bounded in time.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { request } from '../../supervisor/control/client.js';
import { cpus, release } from 'node:os';
import { Baton, root } from '../helpers/baton.js';
import { Netns } from '../helpers/netns.js';
import type { LoadResult } from '../helpers/load.js';
import { baton, plain, pm2, sleep, startLoad, type Scenario, type ServerKind, type UpgradeMark } from './scenarios.js';
import { afterMarks, latency, median, timeline, type Sample } from './stats.js';
import { report, type Results, type RunResult } from './report.js';

const quick = process.argv.includes('--quick');
const UPGRADES = quick ? 3 : 10;
const GAP_MS = 500;
const MEMORY_UPGRADES = quick ? 100 : 1000;
const STEADY_ROUNDS = quick ? 1 : 4;
const STEADY_MS = quick ? 1500 : 4000;

const scenarios = (): Scenario[] => [
  plain('alone'),
  plain('stop-start'),
  pm2(),
  baton('baton pidfd', 'pidfd', false),
  baton('baton inherit', 'inherit', false),
  baton('baton steer+pidfd', 'pidfd', true),
  baton('baton port', 'port', true),
];

const runs: Array<{ server: ServerKind; keepAlive: boolean }> = quick
  ? [{ server: 'helper', keepAlive: false }]
  : [
      { server: 'helper', keepAlive: false },
      { server: 'helper', keepAlive: true },
      { server: 'naive', keepAlive: false },
      { server: 'slow', keepAlive: false },
    ];

function log(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

async function once(s: Scenario, server: ServerKind, keepAlive: boolean, upgrades: number, workers = 1, holdMs = 0): Promise<RunResult> {
  const port = await s.start(server, workers);
  const load = await startLoad(port, keepAlive, 120_000, s.netns);
  const marks: UpgradeMark[] = [];
  await sleep(GAP_MS);
  for (let i = 0; i < upgrades; i++) {
    const at = performance.now() - load.startedAt;
    marks.push({ at: Math.round(at), ...(await s.upgrade()) });
    await sleep(GAP_MS);
  }
  await sleep(GAP_MS + holdMs);
  const elapsed = (performance.now() - load.startedAt) / 1000;
  const r: LoadResult = await load.stop();
  await s.stop();
  s.finish?.(marks);
  const samples = (r.samples ?? []) as Sample[];
  const after = afterMarks(samples, marks.map((m) => m.at));
  return {
    scenario: s.name,
    server,
    keepAlive,
    workers,
    requests: r.ok + r.failed,
    ok: r.ok,
    failed: r.failed,
    failures: r.failures,
    rps: Math.round(r.ok / elapsed),
    latency: latency(samples),
    afterUpgrade: latency(after),
    marks,
    toActiveMs: Math.round(median(marks.flatMap((m) => (m.toActive === undefined ? [] : [m.toActive])))),
    toOldGoneMs: Math.round(median(marks.flatMap((m) => (m.toOldGone === undefined ? [] : [m.toOldGone])))),
    batonAddedMs: marks.some((m) => m.batonAdded !== undefined) ? median(marks.map((m) => m.batonAdded ?? 0)) : undefined,
    workerShare: Object.fromEntries(Object.entries(r.workers as unknown as Record<string, number>)),
    timeline: timeline(samples, 250),
  };
}

/** baton's RSS and fds idle and after many upgrades of a trivial command (its own cost alone). */
async function memory(): Promise<Results['memory']> {
  const b = new Baton(['--listen', '127.0.0.1:0', '--handover', 'inherit', '--ready', 'delay:0', '--drain', '0', '--kill-timeout', '2s', '--', 'sh', '-c', 'exec sleep 600']);
  await b.event('active', 1);
  await sleep(2000);
  const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${b.pid}/status`, 'utf8'))![1]) / 1024;
  const fds = () => readdirSync(`/proc/${b.pid}/fd`).length;
  const idle = { rssMb: rss(), fds: fds() };
  const t0 = performance.now();
  for (let i = 0; i < MEMORY_UPGRADES; i++) {
    await request(b.control, { command: 'reload', wait: true }, 30_000);
  }
  const perUpgradeMs = (performance.now() - t0) / MEMORY_UPGRADES;
  await sleep(3000);
  const after = { rssMb: rss(), fds: fds() };
  await b.stop();
  return { upgrades: MEMORY_UPGRADES, idle, after, perUpgradeMs };
}

async function steeringCost(): Promise<Results['steering']> {
  const ns = new Netns();
  try {
    const out = execFileSync(ns.prefix[0]!, [...ns.prefix.slice(1), process.execPath, '--import', 'tsx', `${root}test/bench/steer-cost.ts`, `benchcost${process.pid}`, quick ? '1000' : '4000'], { cwd: root, encoding: 'utf8' });
    return JSON.parse(out) as Results['steering'];
  } finally {
    ns.remove();
  }
}

async function workers(): Promise<Results['workers']> {
  const out: Results['workers'] = { throughput: [], rolling: [] };
  const ms = quick ? 2000 : 6000;
  for (const [s, n] of [[baton('baton --workers 1', 'pidfd', false), 1], [baton('baton --workers 2', 'pidfd', false), 2], [pm2(2), 2]] as const) {
    log(`workers: ${s.name}`);
    const port = await s.start('cpu', n);
    const load = await startLoad(port, true, 60_000);
    await sleep(ms);
    const elapsed = (performance.now() - load.startedAt) / 1000;
    const r = await load.stop();
    await s.stop();
    out.throughput.push({ scenario: s.name, rps: Math.round(r.ok / elapsed), failed: r.failed, share: Object.fromEntries(Object.entries(r.workers as unknown as Record<string, number>)) });
  }
  for (const keepAlive of [false, true]) {
    log(`workers: rolling upgrade, keep-alive ${keepAlive}`);
    out.rolling.push(await once(baton('baton --workers 2 rolling', 'pidfd', false), 'helper', keepAlive, quick ? 2 : 5, 2));
  }
  return out;
}

function machine(): Results['machine'] {
  const v = (cmd: string, args: string[]) => {
    try {
      return execFileSync(cmd, args, { cwd: root, encoding: 'utf8' }).trim().split('\n')[0]!;
    } catch {
      return 'unknown';
    }
  };
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    kernel: release(),
    node: process.version,
    pm2: (JSON.parse(readFileSync(`${root}node_modules/pm2/package.json`, 'utf8')) as { version: string }).version,
    baton: v('git', ['rev-parse', '--short', 'HEAD']),
    date: new Date().toISOString(),
    quick,
  };
}

async function main(): Promise<void> {
  if (process.argv.includes('--report-only')) {
    // Rewrite the page and plots from the last results.json, without running anything.
    report(JSON.parse(readFileSync(`${root}docs/benchmarks/results.json`, 'utf8')) as Results, `${root}docs`);
    return;
  }
  const started = Date.now();
  const results: Results = { machine: machine(), upgrades: UPGRADES, runs: [], steady: [] };
  for (const { server, keepAlive } of runs) {
    for (const s of scenarios()) {
      log(`${s.name}, ${server} server, ${keepAlive ? 'keep-alive' : 'new connection per request'}`);
      results.runs.push(await once(s, server, keepAlive, UPGRADES));
    }
  }
  // baton with no upgrades against the server alone, alternating: is baton in the data path?
  for (const keepAlive of [false, true]) {
    log(`steady state, ${keepAlive ? 'keep-alive' : 'new connection per request'}`);
    for (let round = 0; round < STEADY_ROUNDS; round++) {
      // ABBA: neither always runs first
      const pair = [plain('alone'), baton('baton pidfd', 'pidfd', false)];
      for (const s of round % 2 ? pair.reverse() : pair) results.steady.push(await once(s, 'helper', keepAlive, 0, 1, STEADY_MS));
    }
  }
  log('steering cost');
  results.steering = await steeringCost();
  log(`memory over ${MEMORY_UPGRADES} upgrades`);
  results.memory = await memory();
  results.workers = await workers();
  results.seconds = Math.round((Date.now() - started) / 1000);
  mkdirSync(`${root}docs/benchmarks`, { recursive: true });
  report(results, `${root}docs`);
  log(`done in ${results.seconds}s: docs/benchmarks.md`);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exitCode = 1;
});

