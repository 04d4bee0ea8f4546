// The canary window (issue 12): a release that dies after it became active, while the old generation drains, is
// rolled back to the old generation, which never stopped. Observed on the processes: which pid answers, which
// processes were started, and what `baton reload --wait` and `baton status` say.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { alive, Baton, ctl, fixture } from './helpers/baton.js';
import { refuses } from './helpers/leftovers.js';
import { gaps, get, type LoadResult, servedFrom } from './helpers/load.js';
import { exclusive } from './helpers/lock.js';
import { load, sleep, until } from './helpers/procs.js';

/** Everything that breaks zero downtime in `r` except failed requests: windows with no answer, slow requests. */
const stalls = (r: LoadResult) => gaps(r).filter((g) => !/ failed: /.test(g));

/**
 * Who answers `n` new connections, one after another, as `pid=... generation=...` lines; given `all`, it stops
 * once each of them has answered: which of the processes that share a listener accepts is the kernel's.
 */
async function answers(port: number, n: number, all: string[] = []): Promise<string[]> {
  const out = new Set<string>();
  for (let i = 0; i < n && !(all.length && all.every((a) => out.has(a))); i++) {
    out.add((await get(port)).split(' worker=')[0]!);
  }
  return [...out];
}

/**
 * Generation 2 exits `crashMs` after it became active, in a `drain` window, under new-connection and keep-alive
 * load; `meanwhile` runs once its window has begun. `reload --wait` hears the rollback; the old process (same pid)
 * serves on; nothing of the bad release starts again; nothing is refused or stalls. Returns baton and the reply.
 */
async function rollsBack(
  t: ExecutionContext,
  o: { drain: string; crashMs: number; meanwhile?: (b: Baton) => Promise<void> },
  after: (b: Baton, reply: { stderr: string }) => Promise<void>,
): Promise<void> {
  const lock = await exclusive();
  const b = new Baton([
    '--listen',
    '127.0.0.1:0',
    '--drain',
    o.drain,
    '--',
    'node',
    fixture,
    `crash:${o.crashMs}`,
    '2',
  ]);
  let loads: ReturnType<typeof load> | undefined;
  try {
    const first = await b.event('active', 1);
    const port = await b.port();
    loads = load(port, 30_000, 200_000); // a long window outlasts the default count
    const began = performance.now();
    const upgrade = ctl(b, 'reload', '--wait');
    await b.event('upgraded', 2);
    await o.meanwhile?.(b);
    const r = await upgrade;
    const rolledBack = performance.now() - began;
    t.is(r.code, 1);
    t.regex(r.stderr, /^error: upgrade to generation 2 failed: generation 2 exited with code 1 \d+\.\d s after it/m);
    t.regex(r.stderr, /^hint: generation 1 serves again; see baton's log$/m);
    t.deepEqual(await answers(port, 20), [`pid=${first.pid} generation=1`], 'the old process serves, the same pid');
    await after(b, r);
    await sleep(1000); // the load goes on past the rollback
    t.deepEqual(await answers(port, 5), [`pid=${first.pid} generation=1`]);
    t.deepEqual(
      b.events.filter((e) => e.event === 'spawn').map((e) => e.generation),
      [1, 2],
      'no generation was started after the rollback',
    );
    t.false(b.events.some((e) => e.event === 'stop' && e.generation === 1));
    const { fresh, kept } = await loads.stop();
    for (const l of [fresh, kept]) {
      t.deepEqual(stalls(l), []);
      t.falsy(l.failures.ECONNREFUSED, 'nothing refused');
      t.deepEqual(servedFrom(l, rolledBack + 500), [1]);
    }
    t.log('failed requests (in flight on the generation that died):', fresh.failures, kept.failures);
  } finally {
    await loads?.stop();
    lock();
    await b.stop();
  }
}

test.serial('a release that exits 1 s after it became active is rolled back to the old generation; under load', (t) =>
  rollsBack(t, { drain: '3s', crashMs: 1000 }, async (b) => {
    await sleep(2500); // past the window: nothing of the bad release starts again, the old one is never stopped
    const status = await ctl(b, 'status');
    t.regex(status.stdout, /failed gen 2 in \d+ms \(rolled back in the canary window\): generation 2 exited/);
  }),
);

test.serial('with --workers 2, one new worker dying in the window rolls back the whole wave', async (t) => {
  const lock = await exclusive();
  const args = ['--listen', '127.0.0.1:0', '--drain', '3s', '--workers', '2'];
  const b = new Baton([...args, '--', 'node', fixture, 'crash:1000', '2', '1']);
  let loads: ReturnType<typeof load> | undefined;
  try {
    await b.waitFor((e) => e.event === 'active' && e.worker === 1);
    const old = b.events.filter((e) => e.event === 'active').map((e) => `pid=${e.pid} generation=1`);
    const port = await b.port();
    loads = load(port, 30_000);
    const r = await ctl(b, 'reload', '--wait');
    t.is(r.code, 1);
    t.regex(r.stderr, /failed: generation 2 \(worker 1\) exited with code 1 \d+\.\d s after it became active$/m);
    t.deepEqual((await answers(port, 400, old)).sort(), old.sort(), 'both old workers serve again');
    const { fresh, kept } = await loads.stop();
    t.deepEqual(stalls(fresh), []);
    t.deepEqual(stalls(kept), []);
    t.false(b.events.some((e) => e.event === 'spawn' && e.generation !== 1 && e.generation !== 2));
  } finally {
    await loads?.stop();
    lock();
    await b.stop();
  }
});

test.serial('a SIGUSR2 in the window carries it on: the new program rolls back the release that dies in it', (t) => {
  let resumed = 0;
  const meanwhile = async (b: Baton) => {
    b.signal('SIGUSR2');
    const event = await b.event('resumed');
    t.is(event.pid, b.pid, 'the same baton process, its program replaced');
    resumed = b.events.indexOf(event);
  };
  return rollsBack(t, { drain: '10s', crashMs: 6000, meanwhile }, async (b, r) => {
    // The client waited across the execve; the time counts from before it.
    const after = /generation 2 exited with code 1 (\d+\.\d) s after it became active$/m.exec(r.stderr);
    t.true(Number(after?.[1]) >= 5.8, `counted from when it became active, before the execve: ${after?.[1]} s`);
    t.true(b.events.findIndex((e) => e.event === 'rollback') > resumed, 'the new program rolled back');
  });
});

test.serial('a release whose --health probe fails while it lives is rolled back; 0 failed requests', async (t) => {
  const lock = await exclusive();
  const health = ['--health', 'probe:test "$BATON_GENERATION" != 2', '--health-interval', '300ms'];
  const b = new Baton(['--listen', '127.0.0.1:0', '--drain', '3s', ...health, '--', 'node', fixture]);
  let loads: ReturnType<typeof load> | undefined;
  try {
    const first = await b.event('active', 1);
    const port = await b.port();
    loads = load(port, 30_000);
    const r = await ctl(b, 'reload', '--wait');
    t.is(r.code, 1);
    t.regex(r.stderr, /failed: generation 2 failed its health probe \(exit 1\) \d+\.\d s after it became active$/m);
    t.regex(r.stderr, /^hint: generation 1 serves again/m);
    const second = b.events.find((e) => e.event === 'spawn' && e.generation === 2)!;
    await until('generation 2 gone', () => (alive(second.pid) ? undefined : true));
    t.deepEqual(await answers(port, 20), [`pid=${first.pid} generation=1`]);
    const { fresh, kept } = await loads.stop();
    t.deepEqual(gaps(fresh), [], 'the old generation takes over while the new one drains');
    t.deepEqual(gaps(kept), []);
  } finally {
    await loads?.stop();
    lock();
    await b.stop();
  }
});

test('a --health probe that hangs fails at the interval', async (t) => {
  const health = ['--health', 'probe:[ "$BATON_GENERATION" != 2 ] || exec sleep 30', '--health-interval', '400ms'];
  const b = new Baton(['--listen', '127.0.0.1:0', '--drain', '5s', ...health, '--', 'node', fixture]);
  try {
    await b.event('active', 1);
    const r = await ctl(b, 'reload', '--wait');
    t.is(r.code, 1);
    t.regex(r.stderr, /failed: generation 2 failed its health probe \(no answer within 400ms\) \d+\.\d s after/m);
  } finally {
    await b.stop();
  }
});

test('after the window, --health-failures in a row count as a crash: the process is replaced', async (t) => {
  const sick = join(mkdtempSync(join(tmpdir(), 'baton-health-')), 'sick');
  const health = ['--health', `probe:test ! -e ${sick}.$BATON_CHILD_PID`, '--health-interval', '200ms'];
  const b = new Baton(['--listen', '127.0.0.1:0', ...health, '--health-failures', '3', '--', 'node', fixture]);
  try {
    const first = await b.event('active', 1);
    const port = await b.port();
    writeFileSync(`${sick}.${first.pid}`, '');
    const marked = performance.now();
    let next = await get(port);
    for (let i = 0; i < 200 && next.includes(`pid=${first.pid} `); i++) {
      await sleep(50);
      next = await get(port);
    }
    t.regex(next, /generation=2 /, 'another process answers');
    t.true(performance.now() - marked >= 3 * 200, 'not before three failures in a row');
    await until('the sick process gone', () => (alive(first.pid) ? undefined : true));
    const restart = b.events.find((e) => e.event === 'restart');
    t.regex(String(restart?.message), /^generation 1 failed its health probe \(exit 1\), 3 times in a row$/);
  } finally {
    await b.stop();
  }
});

test('a SIGUSR2 carries --health failures in a row: the count goes on in the new program', async (t) => {
  const sick = join(mkdtempSync(join(tmpdir(), 'baton-health-')), 'sick');
  const health = ['--health', `probe:test ! -e ${sick}.$BATON_CHILD_PID`, '--health-interval', '3s'];
  const b = new Baton(['--listen', '127.0.0.1:0', ...health, '--health-failures', '3', '--', 'node', fixture]);
  try {
    const first = await b.event('active', 1);
    writeFileSync(`${sick}.${first.pid}`, '');
    await b.event('unhealthy', 1, 10_000);
    b.signal('SIGUSR2');
    const resumed = b.events.indexOf(await b.event('resumed'));
    const before = b.events.filter((e, i) => e.event === 'unhealthy' && i < resumed).length;
    const next = await b.waitFor((e) => e.event === 'unhealthy', 10_000, resumed);
    t.regex(String(next.message), new RegExp(`, ${before + 1} times in a row$`), `${before} failure(s) before`);
    const restart = await b.waitFor((e) => e.event === 'restart', 15_000, resumed);
    t.regex(String(restart.message), /^generation 1 failed its health probe \(exit 1\), 3 times in a row$/);
    await until('the sick process gone', () => (alive(first.pid) ? undefined : true));
  } finally {
    await b.stop();
  }
});

test('--health values are checked at start', async (t) => {
  const base = ['--listen', '127.0.0.1:0'];
  const command = ['--', 'node', fixture];
  await refuses(t, [...base, '--health', 'curl x', ...command], 2, /^unknown --health "curl x"$/, /^e\.g\. --health/);
  const probe = ['--health', 'probe:true'];
  await refuses(
    t,
    [...base, ...probe, '--health-interval', '0', ...command],
    2,
    /^--health-interval must be more than 0$/,
    /^e\.g\. --health-interval 1s$/,
  );
  await refuses(
    t,
    [...base, ...probe, '--health-failures', '0', ...command],
    2,
    /^--health-failures must be a whole number >= 1, not "0"$/,
    /^e\.g\. --health-failures 3$/,
  );
});
