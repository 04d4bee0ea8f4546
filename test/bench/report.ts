// Writes docs/benchmarks.md from the results. Every sentence about a result is computed from the numbers it
// sits beside; the fixed text only says what was run and what a column means.
import { writeFileSync } from 'node:fs';
import { GAP_MS, SLOW_MS } from '../helpers/load.js';
import type { Slice } from './alternate.js';
import { BAD_WINDOW_MS, type BadRelease } from './bad-release.js';
import type { ScaleResult } from './scale.js';
import type { BatonSteps, UpgradeMark } from './scenarios.js';
import { type Latency, median, percentile, range } from './stats.js';
import { barChart, lineChart } from './svg.js';

export interface RunResult {
  scenario: string;
  server: string;
  keepAlive: boolean;
  workers: number;
  requests: number;
  ok: number;
  failed: number;
  failures: Record<string, number>;
  /** How long the load ran, until it was told to stop. */
  elapsedMs?: number;
  rps: number;
  /** The longest time without a successfully completed request, and when it began (ms since the load started). */
  longestGap?: { ms: number; at: number };
  /** Requests that took SLOW_MS or more. */
  slow?: number;
  latency: Latency;
  afterUpgrade: Latency;
  marks: UpgradeMark[];
  /** Medians over the upgrades; absent when nothing was measured. */
  toActiveMs?: number;
  toOldGoneMs?: number;
  batonAddedMs?: number;
  /** Median CPU of baton's main thread in those steps (own_cpu_ms), ms. */
  batonCpuMs?: number;
  /** Medians of baton's own steps over the upgrades (ms). */
  batonSteps?: BatonSteps;
  workerShare: Record<string, number>;
  timeline: Array<[number, number]>;
}

/**
 * One steady-state set: a fresh server alone and a fresh other side, both warmed up, then one client's load
 * alternating between them in slices (alternate.ts).
 */
export interface SteadySet {
  /** The other side: 'baton pidfd', 'alone' (a second server alone: the method's own spread), 'handed listener'. */
  scenario: string;
  keepAlive: boolean;
  /** The side started first; it alternates from set to set. */
  startedFirst: 'alone' | 'other';
  /** [alone, other] for each pair of slices run back to back (ABBA). */
  pairs: Array<[Slice, Slice]>;
  /** baton's CPU over the set's load (ms, in clock ticks), and that load's length (ms). */
  supervisorCpuMs?: number;
  loadMs: number;
}

export interface Results {
  machine: {
    cpu: string;
    cores: number;
    kernel: string;
    node: string;
    pm2: string;
    /** Short commit hash. */
    baton: string;
    commit?: string;
    /** `git status` lines of the uncommitted changes measured with --dirty; empty for a clean tree. */
    dirty?: string[];
    date: string;
    quick: boolean;
  };
  upgrades: number;
  /** Load before the first upgrade and after each. */
  pauseMs?: number;
  /** Parallel client loops. */
  clients?: number;
  /** The server alone ran in a session of its own, as baton's generations do. */
  aloneSetsid?: boolean;
  /** Steady state: each server's warm-up before the pairs of slices (ms). */
  steadyWarmMs?: number;
  /** Steady state: one slice of load on one server (ms), and the pairs of slices in each set. */
  steadySliceMs?: number;
  steadyPairs?: number;
  /** The resolution of supervisorCpuMs (a clock tick). */
  cpuTickMs?: number;
  seconds?: number;
  runs: RunResult[];
  /** No upgrades: the server alone against another side, same load, for the overhead of baton itself. */
  steady: SteadySet[];
  memory?: {
    upgrades: number;
    /** MB; anonMb (RssAnon) and pssMb absent in results measured before they were. */
    idle: { rssMb: number; anonMb?: number; pssMb?: number; fds: number };
    /** When idle was read after generation 1 was active (2 s in results before `started`). */
    idleMs?: number;
    /** Read 2 s after generation 1 was active, baton and the bare node. */
    started?: { rssMb: number; anonMb: number; pssMb: number; fds: number };
    bareStarted?: { rssMb: number; anonMb: number; pssMb: number };
    after: { rssMb: number; anonMb?: number; pssMb?: number; fds: number };
    /** Read again `settleMs` later, baton idle meanwhile. */
    settled?: { rssMb: number; anonMb?: number; pssMb?: number; fds: number };
    settleMs?: number;
    /** A bare `node` doing nothing, in the same run. */
    bare?: { rssMb: number; anonMb: number; pssMb: number };
    perUpgradeMs: number;
    /** The pidfd handover's keeper beside its baton, both serving examples/http-server.mjs. */
    keeper?: { rssKb: number; batonRssKb: number };
  };
  steering?: {
    loadAttachMs: number;
    switchUs: number;
    direct: number;
    steered: number;
    /** steered over direct in each round. */
    pairs?: number[];
    switches?: number;
    rounds?: number;
    conns?: number;
    concurrency?: number;
  };
  /** One bad deploy per supervisor (bad-release.ts). */
  badRelease?: BadRelease[];
  /** Under --steer, one shared socket against a socket per generation: the naive server, new connections. */
  perGeneration?: RunResult[];
  /** Upgrade speed as workers, listeners and idle connections grow (no load). */
  scale?: ScaleResult[];
  workers?: {
    throughputMs?: number;
    throughput: Array<{ scenario: string; rps: number; failed: number; share: Record<string, number> }>;
    rolling: RunResult[];
  };
}

/** A number with `d` decimals; '-' for none (undefined, or NaN, which results.json holds as null). */
const f = (n: number | null | undefined, d = 1) => (n == null || !Number.isFinite(n) ? '-' : n.toFixed(d));
const kinds = (r: RunResult) =>
  Object.entries(r.failures)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ') || '-';
const mode = (r: { keepAlive: boolean }) => (r.keepAlive ? 'keep-alive' : 'new conn');
const run = (r: RunResult) => `${r.server}, ${mode(r)}`;
const unique = <T>(xs: T[]) => [...new Set(xs)];
const between = (lo: string, hi: string) => (lo === hi ? lo : `${lo}–${hi}`);
/** 0 failed, no gap of GAP_MS and no request of SLOW_MS: what the tests call zero downtime. */
const clean = (r: RunResult) => r.failed === 0 && (r.longestGap?.ms ?? Infinity) < GAP_MS && r.slow === 0;

function share(s: Record<string, number>): string {
  const total = Object.values(s).reduce((a, b) => a + b, 0) || 1;
  return Object.entries(s)
    .map(([w, n]) => `w${w} ${((100 * n) / total).toFixed(0)}%`)
    .join(' / ');
}

function largestShare(s: Record<string, number>): number {
  const total = Object.values(s).reduce((a, b) => a + b, 0);
  return total ? (100 * range(Object.values(s)).max) / total : NaN;
}

function writePlots(r: Results, docs: string): void {
  const main = r.runs.filter((x) => x.server === 'helper' && !x.keepAlive);
  const series = main.map((x) => ({
    name: x.scenario,
    points: x.timeline,
    marks: x.scenario === 'alone' ? [] : x.marks.map((m) => m.at),
  }));
  const title = 'p99 latency per 250 ms, helper server, new connection per request (dashed: upgrades)';
  const latency = lineChart(title, 'ms since the load started', 'p99 latency (ms)', series);
  writeFileSync(`${docs}/benchmarks/latency.svg`, latency);
  const label = (x: RunResult) => `${x.scenario} ${x.server} ${x.keepAlive ? 'ka' : 'nc'}`;
  const bars = r.runs.map((x) => ({ label: label(x), value: x.failed }));
  const failures = barChart('Failed requests per scenario (all servers and client modes)', 'failed requests', bars);
  writeFileSync(`${docs}/benchmarks/failures.svg`, failures);
}

function header(r: Results, lines: string[]): void {
  const m = r.machine;
  const dirty = m.dirty ?? [];
  const flags = [m.quick ? '--quick' : '', dirty.length ? '--dirty' : ''].filter(Boolean);
  const command = `npm run bench${flags.length ? ` -- ${flags.join(' ')}` : ''}`;
  lines.push('# Benchmarks', '');
  lines.push(
    `Generated by \`${command}\` on ${m.date}; do not edit by hand (\`npm run bench -- --report-only\` rewrites ` +
      'this page from [results.json](benchmarks/results.json)).',
    '',
  );
  const more = dirty.length > 10 ? ` and ${dirty.length - 10} more` : '';
  const shown =
    dirty
      .slice(0, 10)
      .map((l) => `\`${l.trim()}\``)
      .join(', ') + more;
  lines.push(
    `**Code measured: baton ${m.baton}${m.commit && m.commit !== m.baton ? ` (${m.commit})` : ''}` +
      (m.dirty === undefined
        ? '** (this run did not record whether the tree had uncommitted changes).'
        : dirty.length
          ? ` (dirty)**, with ${dirty.length} uncommitted change(s): ${shown}.`
          : '**, a clean tree.') +
      (m.dirty === undefined
        ? ''
        : ' `npm run bench` builds baton from the tree first, and refuses a tree with uncommitted changes unless ' +
          'run with `--dirty`.'),
    '',
  );
  lines.push(
    `Machine: ${m.cpu}, ${m.cores} cores, Linux ${m.kernel}, Node ${m.node}, pm2 ${m.pm2}. ` +
      `The run took ${r.seconds ?? '?'} s.` +
      (m.quick ? ' A `--quick` run (fewer and shorter measurements): a check that the benchmark runs.' : ''),
    '',
  );
  const pause = r.pauseMs;
  lines.push(
    'Each scenario ran in this one invocation, one after another, under the same load: ' +
      `${r.clients ?? '?'} client loops on loopback, each sending its next request as soon as the previous one ` +
      'ended, with no retry and no pause after an error. ' +
      `A run with upgrades did ${r.upgrades} of them` +
      (pause === undefined
        ? '.'
        : `; each began ${pause} ms after the previous one had completed, and the load ran ${pause} ms before ` +
          `the first and ${2 * pause} ms after the last.`),
    '',
  );
  lines.push('Compare ratios within this run, not absolute numbers across runs.', '');
  lines.push('![latency timeline](benchmarks/latency.svg)', '', '![failures](benchmarks/failures.svg)', '');
}

function upgrades(r: Results, lines: string[]): void {
  const ceiling = (x: RunResult) =>
    r.runs.find((y) => y.scenario === 'alone' && y.server === x.server && y.keepAlive === x.keepAlive)?.rps;
  lines.push('## Upgrades under load', '');
  lines.push(
    "- server: `helper` is examples/http-server.mjs (baton's child helper: it drains on SIGTERM); `naive` " +
      'exits at once on SIGTERM; `slow` waits 1.5 s before it listens and answers each request after 200 ms ' +
      '(test/bench/server.mjs). client: a new connection per request, or keep-alive connections.',
    '- "alone" is the server with no upgrades (its marks are only points in time) and the reference of "vs alone" ' +
      '(requests per second divided by alone\'s, same server and client); "stop-start" stops the server (SIGTERM, ' +
      'wait for its exit) and starts it again at each upgrade; "pm2 cluster" runs `pm2 reload`.',
    `- longest gap: the longest time in which no request completed successfully, from the start of the load ` +
      `until it was told to stop. ≥ ${SLOW_MS / 1000} s: requests (any outcome) that took ${SLOW_MS} ms or more. ` +
      'rps: successful requests per second over the same time.',
    '- p50 is the median; p99 the nearest rank (the smallest latency that 99% of the requests did not exceed); ' +
      'of the requests that succeeded, over the whole run and over those that started in the second after an ' +
      'upgrade began.',
    '- upgrade ms (median over the upgrades): baton, SIGHUP until it logs `upgraded`; stop-start, SIGTERM until ' +
      'the new server accepts; pm2, how long `pm2 reload` took. old gone ms: baton, from its `reload` to the old ' +
      "generation's `exit` in its log; stop-start, SIGTERM until the old server exited.",
    "- baton's own ms (median over the upgrades): what baton times inside itself and logs with `upgraded` " +
      "(`own_ms`, to 0.01 ms): planning the upgrade, from the launch until baton's part of the spawn is done " +
      '(notify socket, env and file actions) and from ready to active (with the slot switch); the ' +
      "child's start (its clone and exec, which run on a worker thread) and grab are not counted. " +
      'Each step is in the table "baton\'s own steps" below.',
    '',
  );
  const cols = [
    'scenario',
    'server',
    'client',
    'requests',
    'failed',
    'failures by kind',
    'longest gap ms',
    `≥ ${SLOW_MS / 1000} s`,
    'rps',
    'vs alone',
    'p50 / p99 / max ms',
    'p99 / max ms, 1 s after each upgrade',
    'upgrade ms',
    'old gone ms',
    "baton's own ms",
  ];
  lines.push(`| ${cols.join(' | ')} |`, `|${cols.map(() => '---').join('|')}|`);
  for (const x of r.runs) {
    const c = ceiling(x);
    const cells = [
      x.scenario,
      x.server,
      mode(x),
      x.requests,
      x.failed,
      kinds(x),
      x.longestGap?.ms ?? '-',
      x.slow ?? '-',
      x.rps,
      c ? f(x.rps / c, 2) : '-',
      `${f(x.latency.p50)} / ${f(x.latency.p99)} / ${f(x.latency.max)}`,
      `${f(x.afterUpgrade.p99)} / ${f(x.afterUpgrade.max)}`,
      f(x.toActiveMs, 0),
      f(x.toOldGoneMs, 0),
      f(x.batonAddedMs, 2),
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  lines.push('');
  for (const name of unique(r.runs.map((x) => x.scenario))) {
    const mine = r.runs.filter((x) => x.scenario === name);
    const failing = mine.filter((x) => x.failed > 0);
    const gaps = mine.map((x) => x.longestGap?.ms ?? NaN);
    const slowTotal = mine.reduce((n, x) => n + (x.slow ?? 0), 0);
    const ratios = mine.flatMap((x) => (ceiling(x) ? [x.rps / ceiling(x)!] : []));
    const parts = [
      `failed requests in ${failing.length} of ${mine.length} runs` +
        (failing.length ? ` (${failing.map((x) => `${run(x)}: ${kinds(x)}`).join('; ')})` : ''),
      `longest gap ${between(f(range(gaps).min, 0), f(range(gaps).max, 0))} ms`,
      `${slowTotal} request(s) of ${SLOW_MS / 1000} s or more`,
      ...(name !== 'alone' && ratios.length
        ? [`vs alone ${between(f(range(ratios).min, 2), f(range(ratios).max, 2))}`]
        : []),
    ];
    lines.push(`- **${name}**: ${parts.join('; ')}.`);
  }
  lines.push('');
  const upgrading = r.runs.filter((x) => x.scenario !== 'alone' && ceiling(x));
  if (upgrading.length) {
    const ratio = (x: RunResult) => x.rps / ceiling(x)!;
    const sorted = [...upgrading].sort((a, b) => ratio(a) - ratio(b));
    const lo = sorted[0]!;
    const hi = sorted[sorted.length - 1]!;
    // as the table shows it: 0.996 reads 1.00 there
    const below = upgrading.filter((x) => Number(f(ratio(x), 2)) < 1).length;
    lines.push(
      `Over the ${upgrading.length} runs with upgrades, "vs alone" ranges from ${f(ratio(lo), 2)} (${lo.scenario}, ` +
        `${run(lo)}) to ${f(ratio(hi), 2)} (${hi.scenario}, ${run(hi)}); it is below 1.00 in ${below} of them.`,
      '',
    );
  }
  const withGaps = r.runs.filter((x) => x.longestGap !== undefined);
  if (withGaps.length) {
    const summary = unique(withGaps.map((x) => x.scenario)).map((name) => {
      const mine = withGaps.filter((x) => x.scenario === name);
      return `${name} ${mine.filter(clean).length} of ${mine.length}`;
    });
    lines.push(
      `Runs with 0 failed requests, no ${GAP_MS} ms without a completed request and no request of ` +
        `${SLOW_MS / 1000} s or more: ${summary.join(', ')}.`,
    );
  }
  lines.push('');
}

/** What a steady-state comparison sets against the server alone. */
const AGAINST: Record<string, string> = {
  'baton pidfd': 'baton (pidfd handover)',
  alone: 'a second server alone',
  'handed listener': 'a server alone given a listener made by another process',
};

const steadySets = (r: Results, scenario: string, keepAlive: boolean) =>
  r.steady.filter((x) => x.scenario === scenario && x.keepAlive === keepAlive);
/** The other side's value over alone's, for each pair of slices of `sets`. */
const pairRatios = (sets: SteadySet[], k: 'rps' | 'usPerRequest') =>
  sets.flatMap((x) => x.pairs.map(([a, b]) => b[k] / a[k])).filter(Number.isFinite);
const setMedians = (sets: SteadySet[]) => sets.map((x) => median(pairRatios([x], 'rps')));

/** baton's own CPU time over a set's load, read in clock ticks from /proc. */
function cpuSentence(cpuMs: number, loadMs: number, tickMs: number | undefined): string {
  const load = `per set's ${f(loadMs / 1000)} s of load`;
  if (tickMs !== undefined && cpuMs < tickMs) {
    return `baton itself used less CPU than /proc counts (one clock tick, ${f(tickMs, 0)} ms) ${load} (median).`;
  }
  const tick = tickMs === undefined ? '' : `, counted in clock ticks of ${f(tickMs, 0)} ms`;
  return (
    `baton itself used a median ${f(cpuMs, 0)} ms of CPU ${load} (${f((100 * cpuMs) / loadMs, 2)}% of ` +
    `one core${tick}).`
  );
}

function steady(r: Results, lines: string[]): void {
  if (!r.steady.length) return;
  lines.push('## Steady state (no upgrades)', '');
  lines.push(
    'The server alone against another side, with no upgrades, the helper server, one worker. Each set starts ' +
      'both afresh (the one started first alternates from set to set); one client process, its code warm, warms ' +
      `each up (${f((r.steadyWarmMs ?? 0) / 1000)} s of load each) and then alternates its load between the two in ` +
      `slices of ${r.steadySliceMs ?? '?'} ms, ${r.steadyPairs ?? '?'} pairs of slices back to back, the order ` +
      'swapped from pair to pair (ABBA). "ratio" is the other side\'s rps over alone\'s in each pair; the table ' +
      "gives their median over every pair of every set, the middle half of the pairs, and the range of the sets' " +
      'own medians (a fresh process of either side can be a little faster or slower for as long as it runs). ' +
      '"CPU per request" is the serving process\'s CPU (all its threads, from schedstat) per request answered, ' +
      'the same ratio. A second server alone against the first shows what the method itself spreads.' +
      (r.aloneSetsid
        ? ' Every server runs in a session and process group of its own (setsid), as baton starts every generation.'
        : ''),
    '',
  );
  const cols = [
    'against alone',
    'client',
    'sets',
    'pairs',
    'ratio (median)',
    'pairs, middle half',
    'set medians, min–max',
    'CPU per request, ratio (median)',
    'failed',
  ];
  lines.push(`| ${cols.join(' | ')} |`, `|${cols.map(() => '---').join('|')}|`);
  const findings: string[] = [];
  for (const scenario of unique(r.steady.map((x) => x.scenario))) {
    for (const keepAlive of [false, true]) {
      const sets = steadySets(r, scenario, keepAlive);
      if (!sets.length) continue;
      const rps = pairRatios(sets, 'rps');
      const cpu = pairRatios(sets, 'usPerRequest');
      const medians = setMedians(sets);
      const failed = sets.reduce((n, x) => n + x.pairs.reduce((m, [a, b]) => m + a.failed + b.failed, 0), 0);
      const cells = [
        AGAINST[scenario] ?? scenario,
        mode({ keepAlive }),
        sets.length,
        rps.length,
        f(median(rps), 3),
        `${f(percentile(rps, 25), 3)}–${f(percentile(rps, 75), 3)}`,
        `${f(range(medians).min, 3)}–${f(range(medians).max, 3)}`,
        f(median(cpu), 3),
        failed,
      ];
      lines.push(`| ${cells.join(' | ')} |`);
      const spent = sets.flatMap((x) => (x.supervisorCpuMs === undefined ? [] : [x.supervisorCpuMs]));
      if (spent.length) {
        const loadMs = median(sets.map((x) => x.loadMs));
        findings.push(`- ${mode({ keepAlive })}: ${cpuSentence(median(spent), loadMs, r.cpuTickMs)}`);
      }
    }
  }
  lines.push('', ...findings, '');
}

function steering(r: Results, lines: string[]): void {
  if (!r.steering) return;
  const s = r.steering;
  lines.push('## Steering cost', '');
  if (s.rounds !== undefined) {
    lines.push(
      `In a network namespace of the benchmark's, one process accepting and closing each connection: new ` +
        `connections per second to the socket directly and through the sk_lookup program, each the median of ` +
        `${s.rounds} rounds of ${s.conns} connections, ${s.concurrency} at a time, alternating which goes first. ` +
        "ratio: the median of the rounds' ratios (each round runs the two back to back).",
      '',
    );
  }
  const cols = [
    'load and attach the program',
    `switch a slot (median of ${s.switches ?? '?'})`,
    'new connections/s direct',
    'through sk_lookup',
    'ratio',
  ];
  lines.push(`| ${cols.join(' | ')} |`, `|${cols.map(() => '---').join('|')}|`);
  const cells = [`${f(s.loadAttachMs)} ms`, `${f(s.switchUs, 1)} µs`, f(s.direct, 0), f(s.steered, 0)];
  lines.push(`| ${[...cells, f(steeredRatio(s), 3)].join(' | ')} |`, '');
  if (s.pairs) {
    const p = s.pairs;
    lines.push(
      `Through sk_lookup over direct in each of the ${p.length} rounds: median ${f(median(p), 3)}, middle half ` +
        `${f(percentile(p, 25), 3)}–${f(percentile(p, 75), 3)}, all ${f(range(p).min, 3)}–${f(range(p).max, 3)}.`,
      '',
    );
  }
}

/** Steered over direct: the median of the rounds' ratios (older results: the ratio of the medians). */
const steeredRatio = (s: NonNullable<Results['steering']>) => (s.pairs ? median(s.pairs) : s.steered / s.direct);

function perGeneration(r: Results, lines: string[]): void {
  if (!r.perGeneration) return;
  lines.push('## A socket per generation under --steer', '');
  lines.push(
    `The naive server exits at once on SIGTERM, dropping what it has accepted. ${r.upgrades} upgrades under a new ` +
      'connection per request, in a network namespace, through `--steer 127.0.0.1:80`: with one socket for ' +
      "baton's life (`--shared-socket`), and with a socket of its own for each generation (the default).",
    '',
  );
  const cols = ['scenario', 'workers', 'requests', 'failed', 'failures by kind', 'longest gap ms'];
  lines.push(`| ${cols.join(' | ')} |`, `|${cols.map(() => '---').join('|')}|`);
  for (const x of r.perGeneration) {
    const cells = [x.scenario, x.workers, x.requests, x.failed, kinds(x), x.longestGap?.ms ?? '-'];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  lines.push('');
}

function badReleases(r: Results, lines: string[]): void {
  if (!r.badRelease) return;
  lines.push('## A bad release', '');
  lines.push(
    `The example server shipped once more as a release that exits 1 s after it starts listening, under a new ` +
      `connection per request (${r.clients ?? '-'} client loops), with each supervisor as its upgrade runs: ` +
      `baton \`--drain 3s\` (its canary window) and SIGHUP, \`pm2 reload\`, and stop-then-start. Requests sent ` +
      `in the ${BAD_WINDOW_MS / 1000} s after the deploy; "serving at the end": which release answered in the last ` +
      'second of them.',
    '',
  );
  lines.push('| | requests | failed | failures | serving at the end |', '|---|---|---|---|---|');
  const release = (g: number) => (g === 1 ? 'the old release' : g === 2 ? 'the bad release' : `generation ${g}`);
  for (const b of r.badRelease) {
    const kinds = Object.entries(b.failures).map(([k, n]) => `${k} ${n}`);
    const serving = b.serving.length ? b.serving.map(release).join(', ') : 'nothing';
    lines.push(`| ${b.scenario} | ${b.requests} | ${b.failed} | ${kinds.join(', ') || '-'} | ${serving} |`);
  }
  lines.push('');
}

/** baton's own steps per scenario (medians over the runs' medians), ms. */
function steps(r: Results, lines: string[]): void {
  const byScenario = new Map<string, BatonSteps[]>();
  for (const x of r.runs)
    if (x.batonSteps) byScenario.set(x.scenario, [...(byScenario.get(x.scenario) ?? []), x.batonSteps]);
  if (byScenario.size === 0) return;
  lines.push("## baton's own steps", '');
  lines.push(
    'Timed inside baton (performance.now()) and logged with each `upgraded` event: the median of each run, and ' +
      "the median of those over the scenario's runs, in ms. plan: the options, release and a generation's socket " +
      '(under --steer made ahead, with its keeper, once the generation before serves); spawn: from the launch ' +
      "until baton's part of the spawn is done (the notify socket, the env and file actions); activate: from " +
      'ready to active, with switch (the steering slot and its state file, in a tmpfs as /run is) in it; own: ' +
      'plan + spawn + activate. exec: the clone and the exec of the child, from when they are handed to a worker ' +
      "thread, while baton's own runs on (the child's start, not part of own). record: the run record and the spawn " +
      "line, written once the process exists, beside the child's start (not part of own). own CPU: the CPU time " +
      "baton's main thread spent in plan, spawn and activate (`own_cpu_ms`); under load, own also counts the time " +
      'baton waited for a core.',
    '',
  );
  const cols = [
    'scenario',
    'plan',
    'spawn',
    'activate',
    'of it switch',
    'own',
    'own CPU',
    'exec (beside)',
    'record (beside)',
  ];
  lines.push(`| ${cols.join(' | ')} |`, `|${cols.map(() => '---').join('|')}|`);
  for (const [scenario, all] of byScenario) {
    const m = (k: keyof BatonSteps) => median(all.map((x) => x[k] ?? NaN));
    const own = m('plan') + m('spawn') + m('activate');
    const cpus = r.runs.flatMap((x) => (x.scenario === scenario && x.batonCpuMs !== undefined ? [x.batonCpuMs] : []));
    const cpu = cpus.length ? median(cpus) : NaN;
    const cells = [m('plan'), m('spawn'), m('activate'), m('switch'), own, cpu, m('exec'), m('record')];
    const shown = cells.map((x) => f(x, 2));
    lines.push(`| ${scenario} | ${shown.join(' | ')} |`);
  }
  lines.push('');
}

function memory(r: Results, lines: string[]): void {
  if (!r.memory) return;
  const mm = r.memory;
  lines.push("## baton's own memory and fds", '');
  lines.push(
    "A trivial command (`sh -c 'exec sleep 600'`, inherit handover, ready at once, no drain), upgraded through " +
      `\`baton reload --wait\` ${mm.upgrades} times, one after the other: ${f(mm.perUpgradeMs)} ms per upgrade ` +
      `end to end. baton's RSS and open fds, from /proc, ${f((mm.idleMs ?? 2000) / 1000, 0)} s after generation 1 ` +
      'was active (idle) and 3 s after the ' +
      `last upgrade: RSS ${mm.after.rssMb >= mm.idle.rssMb ? 'grew' : 'shrank'} by ` +
      `${f(Math.abs(mm.after.rssMb - mm.idle.rssMb))} MB, fds ${mm.idle.fds} → ${mm.after.fds}.` +
      (mm.settled
        ? ` Read again ${f((mm.settleMs ?? 0) / 1000, 0)} s later, baton idle meanwhile (once quiet for 10 s, baton ` +
          `compacts V8's heap and gives back its free pages, memory.ts): RSS ` +
          `${f(mm.settled.rssMb - mm.idle.rssMb)} MB from idle.`
        : ''),
    '',
  );
  lines.push(
    'Private is RssAnon (memory no other process shares: what baton itself costs), PSS splits each shared page ' +
      'among the processes mapping it, RSS counts the node binary and libraries every node process shares. A ' +
      'bare `node` doing nothing was read the same way in the same run' +
      (mm.started
        ? ', beside baton at the same moments. Idle is read once baton has given back what its start left (10 s ' +
          "after it) and V8's memory reducer has run (8 s); 2 s after start shows what start-up still held then."
        : '.'),
    '',
  );
  lines.push('| | private MB | PSS MB | RSS MB | fds |', '|---|---|---|---|---|');
  const row = (what: string, m: { rssMb: number; anonMb?: number; pssMb?: number }, fds: number | string) =>
    lines.push(`| ${what} | ${f(m.anonMb)} | ${f(m.pssMb)} | ${f(m.rssMb)} | ${fds} |`);
  if (mm.started) row('baton 2 s after start', mm.started, mm.started.fds);
  row(`baton idle${mm.started ? `, ${f((mm.idleMs ?? 0) / 1000, 0)} s after start` : ''}`, mm.idle, mm.idle.fds);
  row(`baton 3 s after ${mm.upgrades} upgrades`, mm.after, mm.after.fds);
  if (mm.settled) row(`baton ${f((mm.settleMs ?? 0) / 1000 + 3, 0)} s after them`, mm.settled, mm.settled.fds);
  if (mm.bareStarted) row('bare node, 2 s after start', mm.bareStarted, '-');
  if (mm.bare)
    row(`bare node, idle${mm.started ? `, ${f((mm.idleMs ?? 0) / 1000, 0)} s after start` : ''}`, mm.bare, '-');
  if (mm.bare && mm.idle.anonMb !== undefined) {
    lines.push('', `baton's own share idle: ${f(mm.idle.anonMb - mm.bare.anonMb)} MB private beyond a bare node.`);
  }
  lines.push('');
  if (!mm.keeper) return;
  const k = mm.keeper;
  lines.push(
    `The keeper of the pidfd handover (the process generations pull the listener from), read beside its baton ` +
      `2 s after generation 1 of \`examples/http-server.mjs\` was active: RSS ${k.rssKb} kB, baton's ` +
      `${f(k.batonRssKb / 1024)} MB (${f(k.batonRssKb / k.rssKb, 0)} times the keeper's).`,
    '',
  );
}

function workers(r: Results, lines: string[]): void {
  if (!r.workers) return;
  const w = r.workers;
  lines.push('## Workers', '');
  const secs = w.throughputMs === undefined ? '' : `, ${w.throughputMs / 1000} s of load each`;
  lines.push(`A handler that spends 2 ms of CPU on each request, keep-alive client${secs}:`, '');
  lines.push('| scenario | rps | failed | share of requests per worker |', '|---|---|---|---|');
  for (const t of w.throughput) lines.push(`| ${t.scenario} | ${t.rps} | ${t.failed} | ${share(t.share)} |`);
  lines.push('');
  const one = w.throughput.find((t) => t.scenario === 'baton --workers 1');
  const facts = w.throughput
    .filter((t) => t !== one)
    .map((t) => {
      const times = one ? ` ${f(t.rps / one.rps, 2)}× the rps of baton --workers 1,` : '';
      return `${t.scenario}:${times} its busiest worker served ${f(largestShare(t.share), 0)}% of the requests`;
    });
  if (facts.length) lines.push(`${facts.join('; ')}.`, '');
  lines.push(`Rolling upgrade of 2 workers under load (baton --workers 2, helper server):`, '');
  const cols = [
    'client',
    'upgrades',
    'requests',
    'failed',
    'failures by kind',
    'longest gap ms',
    `≥ ${SLOW_MS / 1000} s`,
    'p99 ms after upgrades',
  ];
  lines.push(`| ${cols.join(' | ')} |`, `|${cols.map(() => '---').join('|')}|`);
  for (const x of w.rolling) {
    const cells = [
      mode(x),
      x.marks.length,
      x.requests,
      x.failed,
      kinds(x),
      x.longestGap?.ms ?? '-',
      x.slow ?? '-',
      f(x.afterUpgrade.p99),
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  lines.push('');
}

function scale(r: Results, lines: string[]): void {
  if (!r.scale?.length) return;
  const base = r.scale[0]!;
  lines.push('## Upgrade speed at scale', '');
  lines.push(
    `baton with --drain 0 and the helper server, no load, ${base.upgrades} SIGHUPs one after the other per case; ` +
      'medians, timed from the benchmark (SIGHUP sent, baton\'s log line read). "active": until the `upgraded` ' +
      'event (every worker of the new generation active); "old gone": until the last process of the old ' +
      `generation exited. "×" is each figure over the first case's.`,
    '',
  );
  const cols = [
    'case',
    'workers',
    'listeners',
    'idle keep-alive conns',
    'SIGHUP → active ms',
    '×',
    'SIGHUP → old gone ms',
    '×',
    "baton's own ms",
  ];
  lines.push(`| ${cols.join(' | ')} |`, `|${cols.map(() => '---').join('|')}|`);
  for (const x of r.scale) {
    const cells = [
      x.name,
      x.workers,
      x.listeners,
      x.idle ? x.idleOpen : 0,
      f(x.toActiveMs, 0),
      f(x.toActiveMs / base.toActiveMs, 2),
      f(x.toOldGoneMs, 0),
      f(x.toOldGoneMs / base.toOldGoneMs, 2),
      f(x.ownMs, 2),
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  lines.push('');
}

function targets(r: Results, lines: string[]): void {
  lines.push('## Targets', '');
  lines.push('| target | result | |', '|---|---|---|');
  const batonRuns = r.runs.filter((x) => x.scenario.startsWith('baton'));
  const helper = batonRuns.filter((x) => x.server === 'helper');
  type Verdict = boolean | undefined | 'reference';
  const tgt = (name: string, value: string, ok: Verdict) => {
    const verdict = ok === 'reference' ? 'reference' : ok === undefined ? 'not measured' : ok ? 'met' : '**missed**';
    lines.push(`| ${name} | ${value} | ${verdict} |`);
  };
  const modes = unique(helper.map(mode)).join(' and ') || 'no client mode';
  tgt(
    `0 failed requests, every baton scenario, helper server (${modes})`,
    `${helper.reduce((n, x) => n + x.failed, 0)} failed in ${helper.length} runs`,
    helper.length ? helper.every((x) => x.failed === 0) : undefined,
  );
  const gapped = helper.filter((x) => x.longestGap !== undefined);
  tgt(
    `no ${GAP_MS} ms without a completed request and no request of ${SLOW_MS / 1000} s or more, every baton ` +
      `scenario, helper server (${modes})`,
    gapped.length
      ? `longest gap ${f(range(gapped.map((x) => x.longestGap!.ms)).max, 0)} ms, ` +
          `${gapped.reduce((n, x) => n + (x.slow ?? 0), 0)} slow in ${gapped.length} runs`
      : '-',
    gapped.length ? gapped.every((x) => x.longestGap!.ms < GAP_MS && x.slow === 0) : undefined,
  );
  const portNaive = batonRuns.find((x) => x.scenario === 'baton port' && x.server === 'naive');
  tgt(
    '0 failed requests, --handover port, naive server',
    portNaive ? `${portNaive.failed} failed` : '-',
    portNaive ? portNaive.failed === 0 : undefined,
  );
  const own = (r.perGeneration ?? []).filter((x) => x.scenario.endsWith('socket per generation'));
  tgt(
    '0 failed requests, --steer with a socket per generation, naive server, pidfd and inherit, 1 and 2 workers',
    own.length ? `${own.reduce((n, x) => n + x.failed, 0)} failed in ${own.length} runs` : '-',
    own.length ? own.every((x) => x.failed === 0) : undefined,
  );
  for (const keepAlive of [false, true]) {
    const sets = steadySets(r, 'baton pidfd', keepAlive);
    const rps = pairRatios(sets, 'rps');
    if (!rps.length) continue;
    const name = `throughput with baton ≥ 0.98 of the server alone, steady, median of pairs, ${mode({ keepAlive })}`;
    const medians = setMedians(sets);
    const spread =
      ` (pairs: middle half ${f(percentile(rps, 25), 3)}–${f(percentile(rps, 75), 3)}; ` +
      `set medians ${f(range(medians).min, 3)}–${f(range(medians).max, 3)})`;
    tgt(name, f(median(rps), 3) + spread, median(rps) >= 0.98);
  }
  const pidfd = r.runs.find((x) => x.scenario === 'baton pidfd' && x.server === 'helper' && !x.keepAlive);
  const alone = r.runs.find((x) => x.scenario === 'alone' && x.server === 'helper' && !x.keepAlive);
  if (pidfd && alone) {
    const name = '(for reference) baton pidfd during upgrades against alone, helper server, new conn';
    tgt(name, f(pidfd.rps / alone.rps, 3), 'reference');
  }
  if (r.steering) {
    const ratio = steeredRatio(r.steering);
    const p = r.steering.pairs;
    const spread = p ? ` (rounds: middle half ${f(percentile(p, 25), 3)}–${f(percentile(p, 75), 3)})` : '';
    tgt('steered ≥ 0.95 of direct (new connections)', f(ratio, 3) + spread, ratio >= 0.95);
  }
  const added = r.runs.flatMap((x) => (x.batonAddedMs === undefined ? [] : [x.batonAddedMs]));
  const cpu = r.runs.flatMap((x) => (x.batonCpuMs === undefined ? [] : [x.batonCpuMs]));
  const cpuNote = cpu.length ? `; its CPU: worst ${f(range(cpu).max, 2)} ms, median ${f(median(cpu), 2)} ms` : '';
  tgt(
    "baton's own time per upgrade ≤ 2 ms (median of a run, every handover mode, under load)",
    added.length ? `${f(range(added).max, 2)} ms (worst of ${added.length} runs${cpuNote})` : '-',
    added.length ? range(added).max <= 2 : undefined,
  );
  if (r.steering) tgt('slot switch ≤ 0.1 ms', `${f(r.steering.switchUs, 1)} µs`, r.steering.switchUs <= 100);
  if (r.memory) {
    const mm = r.memory;
    // Growth is what baton keeps: read once it has idled (a reading 3 s after the burst counts garbage too).
    const kept = mm.settled ?? mm.after;
    const when = mm.settled ? `, read ${f((mm.settleMs ?? 0) / 1000 + 3, 0)} s after the last` : '';
    if (mm.idle.anonMb !== undefined && kept.anonMb !== undefined) {
      const idleAt = mm.started ? ` (${f((mm.idleMs ?? 0) / 1000, 0)} s after start)` : '';
      tgt(`baton private memory (RssAnon) ≤ 12 MB idle${idleAt}`, `${f(mm.idle.anonMb)} MB`, mm.idle.anonMb <= 12);
      const grew = kept.anonMb - mm.idle.anonMb;
      tgt(`private growth ≤ 2 MB over ${mm.upgrades} upgrades${when}`, `${f(grew)} MB`, grew <= 2);
    }
    const growth = kept.rssMb - mm.idle.rssMb;
    tgt(`RSS growth ≤ 2 MB over ${mm.upgrades} upgrades${when}`, `${f(growth)} MB`, growth <= 2);
    tgt('fd count unchanged', `${mm.idle.fds} → ${mm.after.fds}`, mm.idle.fds === mm.after.fds);
  }
  lines.push('');
}

/** Writes results.json, the SVG plots and benchmarks.md into `docs`. */
export function report(r: Results, docs: string): void {
  writeFileSync(`${docs}/benchmarks/results.json`, JSON.stringify(r, null, 1) + '\n');
  writePlots(r, docs);
  const lines: string[] = [];
  header(r, lines);
  upgrades(r, lines);
  steady(r, lines);
  steering(r, lines);
  steps(r, lines);
  memory(r, lines);
  workers(r, lines);
  badReleases(r, lines);
  perGeneration(r, lines);
  scale(r, lines);
  targets(r, lines);
  writeFileSync(`${docs}/benchmarks.md`, lines.join('\n'));
}
