// npm run bench [-- OPTIONS]: zero downtime, overhead, handover time and memory of baton against the server
// alone, stop-then-start and pm2, side by side in one run; writes docs/benchmarks.md,
// docs/benchmarks/results.json and SVG plots. Loopback and namespaces of its own only; every load is bounded in
// time. It builds baton first (npm run build), so that what runs is the code of the commit the page names.
//
//   --quick        fewer scenarios, upgrades and rounds: a check that it runs, not a result (2 min here)
//   --dirty        measure even though the working tree has uncommitted changes (the page then says "dirty"
//                  and lists them); without it the benchmark refuses a dirty tree, since the page could not
//                  name the code it measured. Its own outputs (docs/benchmarks.md, docs/benchmarks/) do not count.
//   --report-only  rewrite the page and plots from docs/benchmarks/results.json; runs nothing, any tree
// bad-release.ts: the same bad release shipped with baton, pm2 reload and stop-start.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { request } from '../../supervisor/control/client.js';
import { Baton, keeperOf, root } from '../helpers/baton.js';
import type { LoadResult } from '../helpers/load.js';
import { exclusive } from '../helpers/lock.js';
import { Netns } from '../helpers/netns.js';
import { badRelease } from './bad-release.js';
import { type Results, type RunResult, report } from './report.js';
import { SCALE_CASES, scaleCase } from './scale.js';
import type { BatonSteps, Scenario, ServerKind, UpgradeMark } from './scenarios.js';
import { baton, CLIENTS, CPU_TICK_MS, cpuMs, plain, pm2, runNs, sleep, startLoad } from './scenarios.js';
import { afterMarks, latency, longestGap, median, type Sample, slow, timeline } from './stats.js';

const OPTIONS = ['--quick', '--dirty', '--report-only'];
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const UPGRADES = quick ? 3 : 10;
const GAP_MS = 500;
const MEMORY_UPGRADES = quick ? 100 : 1000;
const SCALE_UPGRADES = 5;
/** How long baton idles after the upgrades before its memory is read again. */
const SETTLE_MS = 40_000;
/**
 * When baton idle is read, after generation 1 is active: V8's memory reducer first runs about 8 s after start
 * (--gc-memory-reducer-start-delay-ms) and gives back what start-up left; 2 s after start is read too.
 */
const IDLE_MS = 15_000;
/**
 * Many short rounds, alone and baton alternating (ABBA): a slow spell of the machine spoils a pair, not a side. In
 * sets, each with a fresh server of each kind: one process's luck (its JIT's choices, where its code and heap
 * landed) moved its rate by a few percent for as long as it ran, 0.98-1.04 between four pairs of processes.
 */
const STEADY_SETS = quick ? 1 : 6;
const STEADY_ROUNDS = quick ? 2 : 4;
const STEADY_MS = quick ? 1000 : 1500;
/** The load that warms each steady server up first (a fresh node's first second: p99 latency 2-5 times the rest's). */
const STEADY_WARM_MS = 1000;
/** What the benchmark writes: not an input of the measurement, so not "dirty". */
const OUTPUTS = ['docs/benchmarks.md', 'docs/benchmarks/'];

const scenarios = (): Scenario[] => [
  plain('alone'),
  plain('stop-start'),
  pm2(),
  baton('baton pidfd', 'pidfd', false),
  baton('baton inherit', 'inherit', false),
  baton('baton steer+pidfd', 'pidfd', 'generation'),
  baton('baton steer+pidfd shared', 'pidfd', 'shared'),
  baton('baton port', 'port', 'generation'),
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

const medianOf = (values: Array<number | undefined>): number | undefined => {
  const known = values.filter((v): v is number => v !== undefined);
  return known.length ? median(known) : undefined;
};

/**
 * Runs `fn` holding the machine-wide load lock the tests take (test/helpers/lock.ts): a test under load and
 * a benchmark load at the same time would spoil both. Held per measurement, so a waiting test waits seconds.
 */
async function exclusively<T>(fn: () => Promise<T>): Promise<T> {
  const release = await exclusive();
  try {
    return await fn();
  } finally {
    release();
  }
}

/** `s` started with `server`, under load through `upgrades` upgrades, then stopped. */
async function once(
  s: Scenario,
  server: ServerKind,
  keepAlive: boolean,
  upgrades: number,
  workers = 1,
): Promise<RunResult> {
  const port = await s.start(server, workers);
  const m = await measure(s, port, keepAlive, async (startedAt, marks) => {
    await sleep(GAP_MS);
    for (let i = 0; i < upgrades; i++) {
      const at = performance.now() - startedAt;
      marks.push({ at: Math.round(at), ...(await s.upgrade()) });
      await sleep(GAP_MS);
    }
    await sleep(GAP_MS);
  });
  await s.stop();
  s.finish?.(m.marks);
  return summary(s, server, keepAlive, workers, m);
}

/** What one load saw, and baton's CPU meanwhile. */
interface Measured {
  r: LoadResult;
  marks: UpgradeMark[];
  /** Until the load was told to stop. */
  measured: number;
  supervisorCpuMs?: number;
  serverUsPerRequest?: number;
}

/** A load on `port` of the running `s` while `during` runs (it is given when the load began, and the marks). */
async function measure(
  s: Scenario,
  port: number,
  keepAlive: boolean,
  during: (startedAt: number, marks: UpgradeMark[]) => Promise<void>,
): Promise<Measured> {
  const [pid, serving] = [s.supervisor?.(), s.server?.()];
  const cpuBefore = pid === undefined ? undefined : cpuMs(pid);
  const servingBefore = serving === undefined ? undefined : runNs(serving);
  const load = await startLoad(port, keepAlive, 120_000, s.netns);
  const marks: UpgradeMark[] = [];
  await during(load.startedAt, marks);
  const measured = performance.now() - load.startedAt;
  const r: LoadResult = await load.stop();
  const supervisorCpuMs = pid === undefined || cpuBefore === undefined ? undefined : cpuMs(pid) - cpuBefore;
  // Only where one process served throughout (no upgrade): its CPU over the requests answered.
  const served = serving !== undefined && servingBefore !== undefined && marks.length === 0 && r.ok > 0;
  const serverUsPerRequest = served ? (runNs(serving) - servingBefore) / 1000 / r.ok : undefined;
  return {
    ...{ r, marks, measured },
    ...(supervisorCpuMs === undefined ? {} : { supervisorCpuMs }),
    ...(serverUsPerRequest === undefined ? {} : { serverUsPerRequest }),
  };
}

function summary(
  s: Scenario,
  server: ServerKind,
  keepAlive: boolean,
  workers: number,
  { r, marks, measured, supervisorCpuMs, serverUsPerRequest }: Measured,
): RunResult {
  const samples = (r.samples ?? []) as Sample[];
  // Until the load was told to stop: requests still in flight then (a hung one waits out its 10 s timeout)
  // would stretch the run, lower its rps and show a gap where no request was being sent.
  const elapsed = measured;
  const after = afterMarks(
    samples,
    marks.map((m) => m.at),
  );
  const toActive = medianOf(marks.map((m) => m.toActive));
  const toOldGone = medianOf(marks.map((m) => m.toOldGone));
  const batonAdded = medianOf(marks.map((m) => m.batonAdded));
  const batonCpu = medianOf(marks.map((m) => m.batonCpu));
  const stepped = marks.flatMap((m) => (m.steps ? [m.steps] : []));
  const stepMedian = (k: keyof BatonSteps) => Math.round(median(stepped.map((x) => x[k] ?? 0)) * 100) / 100;
  const steps = stepped.length
    ? {
        plan: stepMedian('plan'),
        spawn: stepMedian('spawn'),
        exec: stepMedian('exec'),
        record: stepMedian('record'),
        activate: stepMedian('activate'),
        switch: stepMedian('switch'),
      }
    : undefined;
  return {
    scenario: s.name,
    server,
    keepAlive,
    workers,
    requests: r.ok + r.failed,
    ok: r.ok,
    failed: r.failed,
    failures: r.failures,
    elapsedMs: Math.round(elapsed),
    rps: Math.round(r.ok / (elapsed / 1000)),
    longestGap: longestGap(samples, elapsed),
    slow: slow(samples),
    latency: latency(samples),
    afterUpgrade: latency(after),
    marks,
    ...(toActive === undefined ? {} : { toActiveMs: Math.round(toActive) }),
    ...(toOldGone === undefined ? {} : { toOldGoneMs: Math.round(toOldGone) }),
    ...(batonAdded === undefined ? {} : { batonAddedMs: batonAdded }),
    ...(batonCpu === undefined ? {} : { batonCpuMs: batonCpu }),
    ...(steps ? { batonSteps: steps } : {}),
    ...(supervisorCpuMs === undefined ? {} : { supervisorCpuMs: Math.round(supervisorCpuMs) }),
    ...(serverUsPerRequest === undefined ? {} : { serverUsPerRequest: Math.round(serverUsPerRequest * 100) / 100 }),
    workerShare: Object.fromEntries(Object.entries(r.workers as unknown as Record<string, number>)),
    timeline: timeline(samples, 250),
  };
}

/**
 * A set of rounds of baton idle against the server alone: both started, the same way, and warmed up by a load of
 * their own; then the load alternates between them (ABBA) in short rounds, none of which measures a fresh server.
 */
async function steady(keepAlive: boolean): Promise<RunResult[]> {
  const arms = [plain('alone'), baton('baton pidfd', 'pidfd', false)];
  const started: Array<[Scenario, number]> = [];
  const hold = (ms: number) => async () => {
    await sleep(ms);
  };
  const out: RunResult[] = [];
  try {
    for (const s of arms) started.push([s, await s.start('helper', 1)]);
    for (const [s, port] of started) await exclusively(() => measure(s, port, keepAlive, hold(STEADY_WARM_MS)));
    for (let round = 0; round < STEADY_ROUNDS; round++) {
      for (const [s, port] of round % 2 ? [...started].reverse() : started) {
        const m = await exclusively(() => measure(s, port, keepAlive, hold(STEADY_MS)));
        out.push(summary(s, 'helper', keepAlive, 1, m));
      }
    }
  } finally {
    for (const [s] of started) await s.stop();
  }
  return out;
}

/** baton's RSS and fds idle and after many upgrades of a trivial command (its own cost alone). */
async function memory(): Promise<Results['memory']> {
  const command = ['sh', '-c', 'exec sleep 600'];
  const b = new Baton([
    ...['--listen', '127.0.0.1:0', '--handover', 'inherit', '--ready', 'delay:0', '--drain', '0'],
    ...['--kill-timeout', '2s', '--', ...command],
  ]);
  await b.event('active', 1);
  // A bare node idles beside it, read at the same moments.
  const node = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' });
  const fds = () => readdirSync(`/proc/${b.pid}/fd`).length;
  const both = () => [{ ...memoryOf(b.pid), fds: fds() }, memoryOf(node.pid!)] as const;
  let first: ReturnType<typeof both>;
  let second: ReturnType<typeof both>;
  try {
    await sleep(2000);
    first = both();
    await sleep(IDLE_MS - 2000);
    second = both();
  } finally {
    node.kill('SIGKILL');
  }
  const [[started, bareStarted], [idle, bare]] = [first, second];
  const t0 = performance.now();
  for (let i = 0; i < MEMORY_UPGRADES; i++) {
    await request(b.control, { command: 'reload', wait: true }, 30_000);
  }
  const perUpgradeMs = (performance.now() - t0) / MEMORY_UPGRADES;
  await sleep(3000);
  const after = { ...memoryOf(b.pid), fds: fds() };
  // What a burst of upgrades made V8 take, baton gives back once it has been quiet for 10 s (memory.ts).
  await sleep(SETTLE_MS);
  const settled = { ...memoryOf(b.pid), fds: fds() };
  await b.stop();
  const settle = { settled, settleMs: SETTLE_MS };
  const idleMs = IDLE_MS;
  const read = { started, bareStarted, idle, idleMs, after, ...settle, bare };
  return { upgrades: MEMORY_UPGRADES, ...read, perUpgradeMs, keeper: await keeperMemory() };
}

const kbOf = (text: string, field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
const rssKb = (pid: number) => kbOf(readFileSync(`/proc/${pid}/status`, 'utf8'), 'VmRSS');

/** RSS, private memory (RssAnon: what no other process shares) and PSS (shared pages split among their users), MB. */
function memoryOf(pid: number): { rssMb: number; anonMb: number; pssMb: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const pss = kbOf(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'), 'Pss');
  return { rssMb: kbOf(status, 'VmRSS') / 1024, anonMb: kbOf(status, 'RssAnon') / 1024, pssMb: pss / 1024 };
}

/** The pidfd handover's keeper and its baton, RSS in kB. */
async function keeperMemory(): Promise<{ rssKb: number; batonRssKb: number }> {
  const b = new Baton(['--listen', '127.0.0.1:0', '--', 'node', `${root}examples/http-server.mjs`]);
  try {
    await b.event('active', 1);
    await sleep(2000);
    return { rssKb: rssKb(keeperOf(b.pid)!), batonRssKb: rssKb(b.pid) };
  } finally {
    await b.stop();
  }
}

async function steeringCost(): Promise<Results['steering']> {
  const ns = new Netns();
  try {
    const script = `${root}test/bench/steer-cost.ts`;
    const argv = [process.execPath, '--import', 'tsx', script, `benchcost${process.pid}`, quick ? '1000' : '4000'];
    const out = execFileSync(ns.prefix[0]!, [...ns.prefix.slice(1), ...argv], { cwd: root, encoding: 'utf8' });
    return JSON.parse(out) as Results['steering'];
  } finally {
    ns.remove();
  }
}

/**
 * Under --steer, a socket per generation against one shared socket: the naive server (it exits at once on
 * SIGTERM), a new connection per request, 10 upgrades, with pidfd and inherit, 1 and 2 workers.
 */
async function perGeneration(): Promise<RunResult[]> {
  const out: RunResult[] = [];
  for (const handover of ['pidfd', 'inherit'] as const) {
    for (const workers of [1, 2]) {
      for (const steer of ['shared', 'generation'] as const) {
        const s = baton(
          `steer+${handover} ${steer === 'shared' ? 'shared socket' : 'socket per generation'}`,
          handover,
          steer,
        );
        log(`socket per generation: ${s.name}, ${workers} worker(s)`);
        out.push(await exclusively(() => once(s, 'naive', false, UPGRADES, workers)));
      }
    }
  }
  return out;
}

async function workers(): Promise<Results['workers']> {
  const ms = quick ? 2000 : 6000;
  const out: NonNullable<Results['workers']> = { throughputMs: ms, throughput: [], rolling: [] };
  const sides = [
    [baton('baton --workers 1', 'pidfd', false), 1],
    [baton('baton --workers 2', 'pidfd', false), 2],
    [pm2(2), 2],
  ] as const;
  for (const [s, n] of sides) {
    log(`workers: ${s.name}`);
    const { r, measured } = await exclusively(async () => {
      const port = await s.start('cpu', n);
      const load = await startLoad(port, true, 60_000);
      await sleep(ms);
      const measured = performance.now() - load.startedAt;
      const r = await load.stop();
      await s.stop();
      return { r, measured };
    });
    const share = Object.fromEntries(Object.entries(r.workers as unknown as Record<string, number>));
    const rps = Math.round(r.ok / (measured / 1000));
    out.throughput.push({ scenario: s.name, rps, failed: r.failed, share });
  }
  for (const keepAlive of [false, true]) {
    log(`workers: rolling upgrade, keep-alive ${keepAlive}`);
    const s = baton('baton --workers 2 rolling', 'pidfd', false);
    out.rolling.push(await exclusively(() => once(s, 'helper', keepAlive, quick ? 2 : 5, 2)));
  }
  return out;
}

const git = (...a: string[]) => execFileSync('git', a, { cwd: root, encoding: 'utf8', stdio: 'pipe' });

/** The tree's uncommitted changes (git status lines) outside the benchmark's outputs; undefined without git. */
function uncommitted(): string[] | undefined {
  try {
    const lines = git('status', '--porcelain=v1', '--untracked-files=all').split('\n').filter(Boolean);
    // "XY path" or "XY old -> new"
    return lines.filter(
      (l) =>
        !l
          .slice(3)
          .split(' -> ')
          .every((p) => OUTPUTS.some((o) => p.startsWith(o))),
    );
  } catch {
    return undefined;
  }
}

function machine(dirty: string[]): Results['machine'] {
  const v = (cmd: string, a: string[]) => {
    try {
      return execFileSync(cmd, a, { cwd: root, encoding: 'utf8' }).trim().split('\n')[0]!;
    } catch {
      return 'unknown';
    }
  };
  const pm2Package = JSON.parse(readFileSync(`${root}node_modules/pm2/package.json`, 'utf8')) as { version: string };
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    kernel: release(),
    node: process.version,
    pm2: pm2Package.version,
    baton: v('git', ['rev-parse', '--short', 'HEAD']),
    commit: v('git', ['rev-parse', 'HEAD']),
    dirty,
    date: new Date().toISOString(),
    quick,
  };
}

async function main(): Promise<void> {
  const unknown = args.filter((a) => !OPTIONS.includes(a));
  if (unknown.length) {
    process.stderr.write(`error: unknown option ${unknown.join(' ')}\n`);
    process.stderr.write(`hint: npm run bench [-- ${OPTIONS.map((o) => `[${o}]`).join(' ')}]\n`);
    process.exitCode = 2;
    return;
  }
  if (args.includes('--report-only')) {
    // Rewrite the page and plots from the last results.json, without running anything.
    report(JSON.parse(readFileSync(`${root}docs/benchmarks/results.json`, 'utf8')) as Results, `${root}docs`);
    return;
  }
  const dirty = uncommitted();
  if ((dirty === undefined || dirty.length > 0) && !args.includes('--dirty')) {
    if (dirty === undefined) process.stderr.write('error: cannot tell which commit this is (git status failed)\n');
    else {
      process.stderr.write('error: the working tree has uncommitted changes, so the page could not name the code ');
      process.stderr.write(`it measured:\n${dirty.map((l) => `  ${l}\n`).join('')}`);
    }
    process.stderr.write('hint: commit them first, or run `npm run bench -- --dirty` to measure this tree anyway ');
    process.stderr.write('(the page then says "dirty" and lists the changes)\n');
    process.exitCode = 1;
    return;
  }
  log('npm run build');
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  const started = Date.now();
  const results: Results = {
    machine: machine(dirty ?? ['(not a git checkout)']),
    upgrades: UPGRADES,
    pauseMs: GAP_MS,
    clients: CLIENTS,
    steadyMs: STEADY_MS,
    steadyWarmMs: STEADY_WARM_MS,
    steadySets: STEADY_SETS,
    aloneSetsid: true,
    cpuTickMs: CPU_TICK_MS,
    runs: [],
    steady: [],
  };
  for (const { server, keepAlive } of runs) {
    for (const s of scenarios()) {
      log(`${s.name}, ${server} server, ${keepAlive ? 'keep-alive' : 'new connection per request'}`);
      results.runs.push(await exclusively(() => once(s, server, keepAlive, UPGRADES)));
    }
  }
  // baton with no upgrades against the server alone: is baton in the data path?
  for (const keepAlive of [false, true]) {
    log(`steady state, ${keepAlive ? 'keep-alive' : 'new connection per request'}`);
    for (let set = 0; set < STEADY_SETS; set++) results.steady.push(...(await steady(keepAlive)));
  }
  log('steering cost');
  results.steering = await exclusively(steeringCost);
  log(`memory over ${MEMORY_UPGRADES} upgrades`);
  results.memory = await exclusively(memory);
  results.workers = await workers();
  results.badRelease = await badRelease(exclusively, log);
  results.perGeneration = await perGeneration();
  results.scale = [];
  for (const c of SCALE_CASES) {
    log(`upgrade speed at scale: ${c.name}`);
    results.scale.push(await exclusively(() => scaleCase(c, quick ? 2 : SCALE_UPGRADES)));
  }
  results.seconds = Math.round((Date.now() - started) / 1000);
  mkdirSync(`${root}docs/benchmarks`, { recursive: true });
  report(results, `${root}docs`);
  log(`done in ${results.seconds}s: docs/benchmarks.md`);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exitCode = 1;
});
