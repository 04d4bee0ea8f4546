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
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { promisify } from 'node:util';
import { request } from '../../supervisor/control/client.js';
import { Baton, keeperOf, root } from '../helpers/baton.js';
import type { LoadResult } from '../helpers/load.js';
import { exclusive } from '../helpers/lock.js';
import { Netns } from '../helpers/netns.js';
import type { AlternateOptions, Slice } from './alternate.js';
import { badRelease } from './bad-release.js';
import { type Results, type RunResult, report, type SteadySet } from './report.js';
import { SCALE_CASES, scaleCase } from './scale.js';
import type { BatonSteps, Scenario, ServerKind, UpgradeMark } from './scenarios.js';
import { baton, CLIENTS, CPU_TICK_MS, cpuMs, plain, pm2, sleep, startLoad } from './scenarios.js';
import { afterMarks, latency, longestGap, median, type Sample, slow, timeline } from './stats.js';

const run = promisify(execFile);
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
 * Steady state: sets of a fresh server alone against a fresh other side, the load alternating between them in
 * short slices (alternate.ts). One process's luck (its JIT's choices, where its code and heap landed) moves its
 * rate by a percent or two for as long as it runs: many sets, few seconds each. Against baton, and, to show what
 * the method itself spreads and where a difference comes from, a second server alone and a server alone given a
 * listener made by another process.
 */
const STEADY: Array<[() => Scenario, number]> = [
  [() => baton('baton pidfd', 'pidfd', false), quick ? 1 : 8],
  [() => plain('alone'), quick ? 1 : 4],
  [() => plain('handed listener'), quick ? 1 : 4],
];
const STEADY_SLICE_MS = 200;
const STEADY_PAIRS = quick ? 5 : 30;
/** Each server's warm-up (a fresh node's first second: p99 latency 2-5 times the rest's). */
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

/** What one load saw. */
interface Measured {
  r: LoadResult;
  marks: UpgradeMark[];
  /** Until the load was told to stop. */
  measured: number;
}

/** A load on `port` of the running `s` while `during` runs (it is given when the load began, and the marks). */
async function measure(
  s: Scenario,
  port: number,
  keepAlive: boolean,
  during: (startedAt: number, marks: UpgradeMark[]) => Promise<void>,
): Promise<Measured> {
  const load = await startLoad(port, keepAlive, 120_000, s.netns);
  const marks: UpgradeMark[] = [];
  await during(load.startedAt, marks);
  const measured = performance.now() - load.startedAt;
  return { r: await load.stop(), marks, measured };
}

function summary(
  s: Scenario,
  server: ServerKind,
  keepAlive: boolean,
  workers: number,
  { r, marks, measured }: Measured,
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
    workerShare: Object.fromEntries(Object.entries(r.workers as unknown as Record<string, number>)),
    timeline: timeline(samples, 250),
  };
}

/** One client's load alternating between two running servers (alternate.ts, in a process of its own). */
async function alternating(options: AlternateOptions): Promise<Array<[Slice, Slice]>> {
  const json = JSON.stringify(options);
  const bound = options.warmMs * 2 + options.pairs * options.sliceMs * 2 + 60_000;
  const argv = ['--import', 'tsx', `${root}test/bench/alternate.ts`, json];
  const { stdout } = await run(process.execPath, argv, { cwd: root, timeout: bound, maxBuffer: 16 << 20 });
  return (JSON.parse(stdout) as { pairs: Array<[Slice, Slice]> }).pairs;
}

/** A steady-state set: a fresh server alone and a fresh `other`, started in the order `set` says, then measured. */
async function steadySet(other: Scenario, keepAlive: boolean, set: number): Promise<SteadySet> {
  const alone = plain('alone');
  const started = new Map<Scenario, number>();
  try {
    for (const s of set % 2 ? [other, alone] : [alone, other]) started.set(s, await s.start('helper', 1));
    const targets = [alone, other].map((s) => ({ port: started.get(s)!, pid: s.server!()! }));
    const pid = other.supervisor?.();
    const cpuBefore = pid === undefined ? undefined : cpuMs(pid);
    const t0 = performance.now();
    const pairs = await exclusively(() =>
      alternating({
        targets: [targets[0]!, targets[1]!],
        ...{ keepAlive, concurrency: CLIENTS, warmMs: STEADY_WARM_MS },
        ...{ sliceMs: STEADY_SLICE_MS, pairs: STEADY_PAIRS },
      }),
    );
    const loadMs = Math.round(performance.now() - t0);
    const supervisorCpuMs = pid === undefined || cpuBefore === undefined ? undefined : cpuMs(pid) - cpuBefore;
    return {
      ...{ scenario: other.name, keepAlive, startedFirst: set % 2 ? 'other' : 'alone', pairs, loadMs },
      ...(supervisorCpuMs === undefined ? {} : { supervisorCpuMs }),
    };
  } finally {
    for (const s of started.keys()) await s.stop();
  }
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
    steadyWarmMs: STEADY_WARM_MS,
    steadySliceMs: STEADY_SLICE_MS,
    steadyPairs: STEADY_PAIRS,
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
  // No upgrades: is baton in the data path? The comparisons' sets interleave, so a slow hour spoils none alone.
  for (const keepAlive of [false, true]) {
    for (let set = 0; set < Math.max(...STEADY.map(([, n]) => n)); set++) {
      for (const [make, sets] of STEADY) {
        if (set >= sets) continue;
        const other = make();
        log(`steady state, ${keepAlive ? 'keep-alive' : 'new connection per request'}: ${other.name}, set ${set + 1}`);
        results.steady.push(await steadySet(other, keepAlive, set));
      }
    }
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
