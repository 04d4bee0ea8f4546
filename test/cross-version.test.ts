// A self-upgrade (SIGUSR2) across builds: an earlier baton execs into the current one and back, under
// load, with zero downtime. BATON_RESUME is the wire format between two builds; this is its test.
//
// The swap is a deploy's: baton runs through DEPLOY/current/dist/supervisor/cli.js, `current` is a link
// to a release; the deploy re-points it (ln -sfn) and removes the old release, then sends SIGUSR2. baton
// execs node with its own argv, whose script path is the path it was started through (Node resolves it
// to an absolute path but keeps the link), so the program after the exec can only be the new release.
// (A relative path given from a working directory inside `current` would resolve through the real
// directory, i.e. the old release: baton is started here by the absolute path, as a unit file does.)

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { Baton, fixture, type LogEvent, root, statusOf } from './helpers/baton.js';
import { Leftovers } from './helpers/leftovers.js';
import { gaps, hammer, type LoadResult, servedBy } from './helpers/load.js';
import { exclusive } from './helpers/lock.js';
import { missing, needs } from './helpers/needs.js';
import { running, sleep, startTime, tail } from './helpers/procs.js';
import { BASELINE_COMMIT, buildAt, Deploy } from './helpers/releases.js';
import { SteerWorld } from './helpers/steer.js';

/** The baseline build (a temporary directory), made once for the file. */
let earlier = '';

// The build (tsc, seconds of both cores) holds the lock the load tests take, so that none runs beside it.
test.before(async () => {
  if (missing('git-history').length > 0) return;
  const release = await exclusive();
  try {
    earlier = await buildAt(BASELINE_COMMIT);
  } finally {
    release();
  }
});

test.after.always(() => {
  if (earlier) rmSync(earlier, { recursive: true, force: true });
});

/** What the flow needs of a world (plain loopback, or a steered network namespace). */
interface World {
  baton: Baton;
  control: string;
  leftovers: Leftovers;
  /** Loads across the whole flow (a new connection per request, and keep-alive), stopped together. */
  load: () => Promise<{ stop: () => Promise<LoadResult[]> }>;
  /** What of 20 new connections was not answered by `generation` (empty when all were). */
  servedBy: (generation: number) => Promise<string[]>;
  close: () => Promise<void>;
}

/** Leftovers' environment for baton: its private directories and the mark its processes carry. */
function marked(l: Leftovers): NodeJS.ProcessEnv {
  const keys = ['TMPDIR', 'XDG_RUNTIME_DIR', 'BATON_TEST_MARK', 'BATON_TEST_SPAWNED'];
  return Object.fromEntries(keys.map((k) => [k, l.env[k]]));
}

/** The pidfd handover on 127.0.0.1, port 0. */
function plain(deploy: Deploy): World {
  const control = join(mkdtempSync(join(tmpdir(), 'baton-xv-')), 'control.sock');
  const args = ['--listen', '127.0.0.1:0', '--control', control, '--drain', '200ms', '--', 'node', fixture];
  const leftovers = new Leftovers(args);
  const baton = new Baton(args, marked(leftovers), [], deploy.cli);
  const port = baton.port();
  port.catch(() => {}); // awaited where it is used; not unhandled if baton fails first
  return {
    baton,
    control,
    leftovers,
    load: async () => {
      const fresh = hammer({ port: await port, keepAlive: false, concurrency: 2, maxMs: 60_000 });
      const kept = hammer({ port: await port, keepAlive: true, concurrency: 2, maxMs: 60_000 });
      return { stop: async () => [await fresh.stop(), await kept.stop()] };
    },
    servedBy: async (generation) => servedBy(await port, generation),
    close: async () => rmSync(dirname(control), { recursive: true, force: true }),
  };
}

/** The port handover under --steer, in a network namespace of its own (BATON_RESUME carries `own` and `port`). */
function steered(deploy: Deploy): World {
  const w = new SteerWorld();
  const control = join(mkdtempSync(join(tmpdir(), 'baton-xv-')), 'control.sock');
  const args = ['--steer', '127.0.0.1:80', '--handover', 'port', '--control', control, '--drain', '200ms'];
  args.push('--', 'node', fixture);
  const leftovers = new Leftovers([...w.batonArgs, ...args], { prefix: w.ns.prefix });
  const baton = w.baton(args, marked(leftovers), deploy.cli);
  return {
    baton,
    control,
    leftovers,
    load: async () => {
      const fresh = await w.hammer(80, false);
      const kept = await w.hammer(80, true);
      return { stop: async () => [await fresh.stop(), await kept.stop()] };
    },
    servedBy: async (generation) => {
      const r = await w.load({ port: 80, keepAlive: false, concurrency: 1, maxRequests: 20, maxMs: 10_000 });
      const others = [...r.generations].filter(([g]) => g !== generation).map(([g, n]) => `${n} by generation ${g}`);
      return [...others, ...(r.failed > 0 ? [`${r.failed} failed: ${JSON.stringify(r.failures)}`] : [])];
    },
    close: async () => {
      await w.close();
      rmSync(dirname(control), { recursive: true, force: true });
    },
  };
}

/** The script a node process runs, from its /proc/PID/cmdline (the first argument that is not a node flag). */
function script(pid: number): string | undefined {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8')
    .split('\0')
    .slice(1)
    .find((a) => !a.startsWith('-'));
}

/**
 * Generation `n` serves under one build: deploy `build`, SIGUSR2, and check that the same baton process
 * now runs it while the very process of generation `n` serves on; then a SIGHUP under the new build
 * brings generation n+1, which alone serves. Resolves with generation n+1's `active` event.
 */
async function crossOver(t: ExecutionContext, w: World, deploy: Deploy, build: string, serving: LogEvent) {
  const { baton } = w;
  const n = serving.generation!;
  const started = startTime(serving.pid)!;
  const batonStarted = startTime(baton.pid)!;
  const previous = deploy.active;
  const release = await deploy.activate(build);
  t.false(existsSync(previous), 'the old release is removed: the path baton runs through reaches only the new one');
  const from = baton.events.length;
  baton.signal('SIGUSR2');
  const resumed = await baton.waitFor((e) => e.event === 'resumed', 20_000, from);
  t.is(resumed.pid, baton.pid, 'the new program runs under the same pid');
  t.is(resumed.serving, n);
  t.is(startTime(baton.pid), batonStarted, 'the very baton process (execve keeps the pid and its start time)');
  t.is(script(baton.pid), deploy.cli, "it was exec'd through the deploy path, which now leads to the new release");
  t.is(deploy.active, release);
  t.like((await statusOf(w.control)).generations, [{ number: n, pid: serving.pid, state: 'active' }]);
  await sleep(300);
  t.is(startTime(serving.pid), started, `the process of generation ${n} is not disturbed`);
  t.deepEqual(await w.servedBy(n), [], `generation ${n} alone serves on after the self-upgrade`);

  await baton.upgradeTo(n + 1);
  await baton.event('exit', n);
  const next = await baton.event('active', n + 1);
  t.deepEqual(await w.servedBy(n + 1), [], `after a SIGHUP under the new build, generation ${n + 1} serves`);
  t.deepEqual(running(baton.pid), [next.pid], `generation ${n + 1} is baton's only child`);
  return next;
}

/** Earlier build → current → earlier, under load; then a clean stop and nothing left behind. */
async function roundTrip(t: ExecutionContext, open: (deploy: Deploy) => World): Promise<void> {
  const release = await exclusive();
  const deploy = new Deploy();
  let w: World | undefined;
  let load: Awaited<ReturnType<World['load']>> | undefined;
  let checked = false;
  try {
    await deploy.activate(earlier);
    w = open(deploy);
    const first = await w.baton.event('active', 1);
    load = await w.load();
    await sleep(300);
    const second = await crossOver(t, w, deploy, root, first);
    await crossOver(t, w, deploy, earlier, second);
    await sleep(300);
    for (const r of await load.stop()) t.deepEqual(gaps(r), [], `${r.ok} requests`);
    const stopped = await w.baton.stop();
    t.is(stopped.code, 0, tail(w.baton));
    checked = true;
    t.deepEqual(await w.leftovers.check(w.baton.stderr), [], 'nothing left behind');
  } finally {
    await load?.stop(); // a no-op unless the test failed half-way
    if (w && !checked) {
      await Promise.race([w.baton.stop(), sleep(10_000)]);
      await w.leftovers.check(w.baton.stderr); // kills what the failed run left
    }
    await w?.close();
    deploy.remove();
    release();
  }
}

const gitTest = needs('git-history');
const bpfTest = needs('git-history', 'bpf');

const across = `self-upgrade across builds (${BASELINE_COMMIT} ⇄ current)`;

gitTest.serial(`${across}, pidfd handover, under load`, (t) => roundTrip(t, plain));

bpfTest.serial(`${across}, --steer --handover port, under load`, (t) => roundTrip(t, steered));
