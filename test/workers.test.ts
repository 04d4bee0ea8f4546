import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { promisify } from 'node:util';
import test from 'ava';
import { Baton, childrenOf, cli, fixture, statusOf } from './helpers/baton.js';
import { gaps, get, type LoadResult } from './helpers/load.js';
import { exclusive } from './helpers/lock.js';
import { needs } from './helpers/needs.js';
import { load, running, sleep, TICK, tail, Watch } from './helpers/procs.js';

const run = promisify(execFile);
const sorted = (pids: Iterable<number>) => [...pids].sort((a, b) => a - b);

/** The socket inode of baton's listener `fd`. */
function inode(pid: number, fd: number): string {
  return readlinkSync(`/proc/${pid}/fd/${fd}`);
}

/** How many of `pids` hold the socket `socket` open (a draining helper closes its copy: it no longer accepts). */
function holding(pids: number[], socket: string): number {
  return pids.filter((pid) => {
    try {
      return readdirSync(`/proc/${pid}/fd`).some((fd) => linkIs(pid, fd, socket));
    } catch {
      return false;
    }
  }).length;
}

function linkIs(pid: number, fd: string, target: string): boolean {
  try {
    return readlinkSync(`/proc/${pid}/fd/${fd}`) === target;
  } catch {
    return false;
  }
}

/**
 * New connections until every pid in `want` has answered (at most 2000 requests or 15 s, 4 at a time):
 * the pids that answered, each with the generation it said. The kernel does not deal connections
 * round-robin, but every idle worker waiting on the queue wins some.
 */
async function answering(port: number, want: number[]): Promise<Map<number, number>> {
  const seen = new Map<number, number>();
  const end = Date.now() + 15_000;
  let sent = 0;
  const loop = async () => {
    while (!want.every((p) => seen.has(p)) && sent < 2000 && Date.now() < end) {
      sent++;
      const body = await get(port);
      seen.set(Number(/pid=(\d+)/.exec(body)?.[1]), Number(/generation=(\d+)/.exec(body)?.[1]));
    }
  };
  await Promise.all([loop(), loop(), loop(), loop()]);
  return seen;
}

const listen = ['--listen', '127.0.0.1:0'];

// Root: it reads baton's /proc/PID/fd (or maps), which belong to root once baton is not dumpable.
needs('root').serial(
  'under load: rolling wave over 3 workers, no gap, never under 3 accepting, then gen 2',
  async (t) => {
    const release = await exclusive();
    const baton = new Baton([...listen, '--workers', '3', '--drain', '200ms', '--', 'node', fixture, 'slow:300', '2']);
    const watch = new Watch(baton.pid);
    try {
      await baton.waitFor((e) => e.event === 'active' && e.worker === 2);
      const port = await baton.port();
      const listener = inode(baton.pid, Number(baton.events.find((e) => e.event === 'listening')!.fd));
      const loads = load(port, 40_000);
      await sleep(300);
      // Processes that hold the listener: a worker takes it when it starts serving and closes it when it drains.
      const samples: number[] = [];
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          samples.push(holding(childrenOf(baton.pid), listener));
          await sleep(10);
        }
      })();
      baton.signal('SIGHUP');
      await baton.waitFor((e) => e.event === 'upgraded' && e.generation === 2, 20_000);
      for (const old of watch.seen(1)) await watch.exit(old);
      sampling = false;
      await sampler;
      await sleep(300);
      const { fresh, kept } = await loads.stop();
      t.deepEqual(gaps(fresh), []);
      t.deepEqual(gaps(kept), []);
      t.log(
        `holding the listener: min ${Math.min(...samples)}, max ${Math.max(...samples)}, ${samples.length} samples`,
      );
      t.true(samples.length > 20, `${samples.length} samples`);
      t.true(
        samples.every((n) => n >= 3),
        `processes holding the listener: ${samples.join(',')}`,
      );
      t.true(samples.includes(6), 'both generations held it at once');
      // One slot at a time: each new worker started only after the one before had spent its 300 ms getting ready.
      const wave = watch.seen(2);
      t.deepEqual(
        wave.map((p) => p.worker),
        [0, 1, 2],
      );
      for (let i = 1; i < 3; i++) {
        t.true(wave[i]!.start - wave[i - 1]!.start >= 300 - TICK, `worker ${i} started too early`);
      }
      const pids = sorted(wave.map((p) => p.pid));
      const seen = await answering(port, pids);
      t.deepEqual(sorted(seen.keys()), pids, 'exactly the 3 new processes answer');
      t.deepEqual([...new Set(seen.values())], [2]);
      t.deepEqual(sorted(running(baton.pid)), pids);
    } finally {
      watch.stop();
      t.is((await baton.stop()).code, 0, tail(baton));
      release();
    }
  },
);

test.serial('under load: a worker failing mid-wave stops the wave without a gap; the old ones serve on', async (t) => {
  const release = await exclusive();
  const args = [...listen, '--workers', '3', '--drain', '200ms'];
  const baton = new Baton([...args, '--', 'node', fixture, 'exit-before-ready', '2', '1']);
  const watch = new Watch(baton.pid);
  try {
    await baton.waitFor((e) => e.event === 'active' && e.worker === 2);
    const port = await baton.port();
    const loads = load(port, 40_000);
    await sleep(300);
    baton.signal('SIGHUP');
    t.is((await baton.event('rollback')).generation, 2);
    // Worker 0 of generation 2 had taken its slot: it drains and exits (worker 1 exited before ready).
    await watch.exit(await watch.slot(2, 0));
    await sleep(300);
    const { fresh, kept } = await loads.stop();
    t.deepEqual(gaps(fresh), []);
    t.deepEqual(gaps(kept), []);
    t.false(
      watch.seen(2).some((p) => p.worker === 2),
      'the wave stopped before slot 2',
    );
    const old = sorted(watch.seen(1).map((p) => p.pid));
    t.is(old.length, 3);
    const seen = await answering(port, old);
    t.deepEqual(sorted(seen.keys()), old, 'the 3 processes of generation 1 answer, and nothing else');
    t.deepEqual(sorted(running(baton.pid)), old);
  } finally {
    watch.stop();
    t.is((await baton.stop()).code, 0, `the regained workers' status, not the failed one's\n${tail(baton)}`);
    release();
  }
});

test.serial('under load: a crashing worker is replaced in its slot after 1 s while the others answer', async (t) => {
  const release = await exclusive();
  const baton = new Baton([...listen, '--workers', '3', '--', 'node', fixture, 'crash:1000', '1', '1']);
  const watch = new Watch(baton.pid);
  try {
    await baton.waitFor((e) => e.event === 'active' && e.worker === 2);
    const port = await baton.port();
    const loads = load(port, 40_000);
    const crashed = await watch.exit(await watch.slot(1, 1));
    // The replacement is a new run of the command: the next generation number, in the same slot.
    const replacement = await watch.slot(2, 1);
    t.log(`restarted ${replacement.start - crashed.gone}..${replacement.start - crashed.alive} ms after the crash`);
    t.true(replacement.start - crashed.alive >= 1000 - TICK, `restarted ${replacement.start - crashed.alive} ms after`);
    // Below 1.5 s, the next step of the backoff.
    t.true(replacement.start - crashed.gone < 1500, `restarted ${replacement.start - crashed.gone} ms after the crash`);
    await baton.waitFor((e) => e.event === 'active' && e.worker === 1 && e.generation === 2);
    await sleep(300);
    const { fresh, kept } = await loads.stop();
    t.log('failures', fresh.failures, kept.failures);
    // Two workers serve on, so no gap; the crashed process loses what it held (at most one request per
    // client loop), nothing is refused.
    for (const r of [fresh, kept] as LoadResult[]) {
      t.deepEqual(
        Object.keys(r.failures).filter((k) => k !== 'ECONNRESET'),
        [],
        JSON.stringify(r.failures),
      );
      t.true((r.failures.ECONNRESET ?? 0) <= 2, JSON.stringify(r.failures));
      t.deepEqual(
        gaps(r).filter((p) => !p.endsWith(`failed: ${JSON.stringify(r.failures)}`)),
        [],
      );
    }
    const expected = sorted([(await watch.slot(1, 0)).pid, replacement.pid, (await watch.slot(1, 2)).pid]);
    t.deepEqual(sorted((await answering(port, expected)).keys()), expected);
  } finally {
    watch.stop();
    await baton.stop();
    release();
  }
});

test.serial('--surge 2: a wave over 4 workers starts them 2 at a time', async (t) => {
  const baton = new Baton([...listen, '--workers', '4', '--surge', '2', '--', 'node', fixture, 'slow:1500', '2']);
  const watch = new Watch(baton.pid);
  try {
    await baton.waitFor((e) => e.event === 'active' && e.worker === 3);
    baton.signal('SIGHUP');
    await baton.waitFor((e) => e.event === 'upgraded' && e.generation === 2, 20_000);
    const wave = [...watch.seen(2)].sort((a, b) => a.start - b.start);
    t.is(wave.length, 4);
    t.log(
      'starts (ms after the first)',
      wave.map((p) => p.start - wave[0]!.start),
    );
    t.deepEqual(
      wave
        .map((p) => p.worker)
        .slice(0, 2)
        .sort(),
      [0, 1],
    );
    t.deepEqual(
      wave
        .map((p) => p.worker)
        .slice(2)
        .sort(),
      [2, 3],
    );
    // Each batch is spawned at once; the second only after the first spent its 1.5 s getting ready.
    // Half of that is far beyond the time to spawn two processes.
    t.true(wave[1]!.start - wave[0]!.start < 750, `first batch ${wave[1]!.start - wave[0]!.start} ms apart`);
    t.true(wave[3]!.start - wave[2]!.start < 750, `second batch ${wave[3]!.start - wave[2]!.start} ms apart`);
    t.true(wave[2]!.start - wave[1]!.start >= 1500 - TICK, `batches ${wave[2]!.start - wave[1]!.start} ms apart`);
    // A batch's launches run side by side while each clone runs on a worker thread: the next launch's notify
    // socket, made under umask 0177, waits for the spawn before it, whose child would get that umask too.
    const umask = (pid: number) => /^Umask:\s*(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    for (const p of wave) t.is(umask(p.pid), umask(baton.pid), `generation 2 worker ${p.worker}'s umask`);
  } finally {
    watch.stop();
    t.is((await baton.stop()).code, 0, tail(baton));
  }
});

test.serial('--workers auto runs one process per CPU, one in each slot', async (t) => {
  const baton = new Baton([...listen, '--workers', 'auto', '--', 'node', fixture]);
  const watch = new Watch(baton.pid);
  try {
    const cpus = availableParallelism();
    await baton.waitFor((e) => e.event === 'active' && e.worker === cpus - 1);
    await sleep(100);
    const kids = sorted(running(baton.pid));
    t.is(kids.length, cpus);
    const procs = watch.seen(1);
    t.deepEqual(
      procs.map((p) => p.worker),
      Array.from({ length: cpus }, (_, i) => i),
    );
    t.deepEqual(sorted(procs.map((p) => p.pid)), kids);
    t.is((await statusOf(baton)).workers, cpus);
  } finally {
    watch.stop();
    await baton.stop();
  }
});

test.serial('SIGTTIN and SIGTTOU add and remove a worker; status shows one row per worker', async (t) => {
  const baton = new Baton([...listen, '--workers', '2', '--drain', '100ms', '--', 'node', fixture]);
  const watch = new Watch(baton.pid);
  try {
    await baton.waitFor((e) => e.event === 'active' && e.worker === 1);
    baton.signal('SIGTTIN');
    const added = await watch.slot(2, 2);
    await baton.waitFor((e) => e.event === 'active' && e.worker === 2);
    let s = await statusOf(baton);
    t.is(s.workers, 3);
    t.is(running(baton.pid).length, 3);
    const text = await run(process.execPath, [cli, 'status', '--control', baton.control], { encoding: 'utf8' });
    t.is(text.stdout.split('\n').filter((l) => / active /.test(l)).length, 3);
    baton.signal('SIGTTOU');
    await watch.exit(added);
    s = await statusOf(baton);
    t.is(s.workers, 2);
    t.deepEqual(sorted(running(baton.pid)), sorted(watch.seen(1).map((p) => p.pid)), 'the two first workers remain');
  } finally {
    watch.stop();
    await baton.stop();
  }
});

test.serial('under load: --workers with the inherit handover upgrades without a gap', async (t) => {
  const release = await exclusive();
  const args = [...listen, '--workers', '2', '--handover', 'inherit', '--ready', 'notify', '--drain', '200ms'];
  const baton = new Baton([...args, '--', 'node', fixture]);
  const watch = new Watch(baton.pid);
  try {
    await baton.waitFor((e) => e.event === 'active' && e.worker === 1);
    const port = await baton.port();
    const first = sorted(watch.seen(1).map((p) => p.pid));
    t.deepEqual(sorted((await answering(port, first)).keys()), first, 'both workers answer');
    const loads = load(port, 40_000);
    await sleep(300);
    baton.signal('SIGHUP');
    await baton.waitFor((e) => e.event === 'upgraded' && e.generation === 2);
    for (const old of watch.seen(1)) await watch.exit(old);
    await sleep(300);
    const { fresh, kept } = await loads.stop();
    t.deepEqual(gaps(fresh), []);
    t.deepEqual(gaps(kept), []);
    const second = sorted(watch.seen(2).map((p) => p.pid));
    const seen = await answering(port, second);
    t.deepEqual(sorted(seen.keys()), second);
    t.deepEqual([...new Set(seen.values())], [2]);
  } finally {
    watch.stop();
    await baton.stop();
    release();
  }
});
