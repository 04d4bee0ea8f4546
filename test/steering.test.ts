import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { alive, childrenOf, fixture } from './helpers/baton.js';
import { scratch } from './helpers/leftovers.js';
import { gaps } from './helpers/load.js';
import { needs } from './helpers/needs.js';
import { answered, exitOf, inWorld, pidsOf, servesOnly, wallNow } from './helpers/steer.js';

const ports = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `127.0.0.1:${from + i}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The first crash of a slot restarts after 1 s (docs/workers.md: 1.5^(n-1) s). */
const FIRST_BACKOFF_MS = 1000;

needs('bpf').serial('one socket serves 3 ports, a 100-port range and IPv6; other addresses are refused', (t) =>
  inWorld(false, async (w) => {
    const args = ['--steer', '127.0.0.1:7,77,777', '--steer', '127.0.0.1:8000-8099', '--steer', '[::1]:7'];
    // No --listen: with rules of both families each generation's socket is bound at [::]:0, which takes IPv4 too.
    args.push('--steer', 'tcp:127.0.0.0/8:9', '--', 'node', 'examples/tcp-echo.mjs');
    const baton = w.baton(args);
    await baton.event('active', 1);
    const targets = ['127.0.0.1:7', '127.0.0.1:77', '127.0.0.1:777', ...ports(8000, 8099), '[::1]:7', '127.0.0.3:9'];
    const r = await w.echo([...targets, '127.0.0.2:7', '127.0.0.1:8100', '[::1]:77']);
    t.deepEqual(
      Object.keys(r).filter((k) => r[k] === 'ok'),
      targets,
      JSON.stringify(r),
    );
    t.is(r['127.0.0.2:7'], 'ECONNREFUSED');
    t.is(r['127.0.0.1:8100'], 'ECONNREFUSED');
    t.is(r['[::1]:77'], 'ECONNREFUSED');
    t.true(w.pinned());
    await baton.stop();
    const last = baton.events.find((e) => e.event === 'steering-stop')!;
    const counts =
      '127\\.0\\.0\\.1:7,77,777 steered=3 nosock=0; 127\\.0\\.0\\.1:8000-8099 steered=100 nosock=0; ' +
      '\\[::1\\]:7 steered=1 nosock=0; tcp:127\\.0\\.0\\.0\\/8:9 steered=1 nosock=0';
    t.regex(String(last.rules), new RegExp(counts));
    t.false(w.pinned(), 'a clean stop leaves no pins');
  }),
);

/**
 * 5 upgrades under load (new connections or keep-alive): no failure, no 500 ms gap, no request of 1 s;
 * then every process of generations 1-5 has exited (observed in /proc), baton's children are generation
 * 6's, and generation 6 alone answers.
 */
async function zeroDowntime(t: ExecutionContext, args: string[], mode: string, keepAlive: boolean, workers = 1) {
  await inWorld(true, async (w) => {
    const baton = w.baton([...args, '--drain', '300ms', '--', 'node', fixture, mode]);
    await baton.event('active', 1);
    const load = await w.hammer(80, keepAlive);
    for (let n = 2; n <= 6; n++) await baton.upgradeTo(n);
    await baton.event('upgraded', 6);
    for (const pid of pidsOf(baton, 1, 5)) await exitOf(pid, 20_000);
    const r = await load.stop();
    t.deepEqual(gaps(r), []);
    t.true(r.ok > 100, `${r.ok} requests`);
    // A keep-alive connection stays with its generation until that one drains, so a generation that serves
    // only briefly may get none; new connections reach every generation while it is in the slot.
    if (keepAlive) t.deepEqual([answered(r)[0], answered(r).at(-1)], [1, 6], 'from generation 1 to generation 6');
    else t.deepEqual(answered(r), [1, 2, 3, 4, 5, 6], 'every generation answered in turn');
    const last = pidsOf(baton, 6, 6);
    t.is(last.length, workers);
    t.deepEqual(childrenOf(baton.pid).sort(), last.sort(), "baton's children are generation 6's");
    await servesOnly(t, w, 80, keepAlive, 6);
    t.is((await baton.stop()).code, 0);
  });
}

const shared = ['--steer', '127.0.0.1:80', '--listen', '127.0.0.1:0'];
const port = ['--steer', '127.0.0.1:80', '--handover', 'port'];
for (const keepAlive of [false, true]) {
  const how = keepAlive ? 'keep-alive' : 'new connections';
  needs('bpf').serial(`zero downtime: --steer with the pidfd handover, 5 upgrades, ${how}`, (t) =>
    zeroDowntime(t, shared, 'good', keepAlive),
  );
  needs('bpf').serial(`zero downtime: --steer with 2 workers, rolling upgrades, ${how}`, (t) =>
    zeroDowntime(t, [...shared, '--workers', '2'], 'good', keepAlive, 2),
  );
  needs('bpf').serial(`zero downtime: --handover port, 5 upgrades, ${how}`, (t) =>
    zeroDowntime(t, port, 'good', keepAlive),
  );
}

// A server that exits at once drops what it is serving (README, Limits): with keep-alive that is a
// request on every connection it holds, so only new connections are promised here.
needs('bpf').serial('zero downtime: --handover port, a server that exits at once on SIGTERM, new connections', (t) =>
  zeroDowntime(t, port, 'exit-on-term', false),
);

for (const carried of [false, true]) {
  const title = carried ? ', with a SIGUSR2 in the window, which carries it' : '';
  needs('bpf').serial(
    `canary: --handover port, a release failing --health is rolled back${title}; it exits on SIGTERM; 0 failed`,
    (t) =>
      inWorld(true, async (w) => {
        // Generation 2's Nth probe fails: it serves from the slot first (across baton's execve, if carried).
        // Generation 2's probe fails once `sick` exists: made 600 ms into its window (after the execve, if carried).
        const sick = join(mkdtempSync(join(tmpdir(), 'baton-canary-')), 'sick');
        const fails = `[ "$BATON_GENERATION" != 2 ] || [ ! -e ${sick} ]`;
        const health = ['--health', `probe:${fails}`, '--health-interval', '300ms'];
        const drain = carried ? '15s' : '3s';
        const baton = w.baton([...port, '--drain', drain, ...health, '--', 'node', fixture, 'exit-on-term']);
        const first = await baton.event('active', 1);
        const load = await w.hammer(80, false);
        await sleep(300);
        baton.signal('SIGHUP');
        await baton.event('upgraded', 2);
        if (carried) {
          baton.signal('SIGUSR2');
          await baton.event('resumed');
        }
        await sleep(600);
        writeFileSync(sick, '');
        const rollback = await baton.event('rollback', 2, 20_000);
        t.is(rollback.phase, 'canary');
        t.regex(String(rollback.message), /^generation 2 failed its health probe \(exit 1\) \d+\.\d s after/);
        const resumed = baton.events.findIndex((e) => e.event === 'resumed');
        if (carried) t.true(resumed >= 0 && resumed < baton.events.indexOf(rollback), 'the new program rolled back');
        const second = baton.events.find((e) => e.event === 'spawn' && e.generation === 2)!;
        await exitOf(second.pid, 20_000);
        await sleep(300);
        const r = await load.stop();
        t.is(r.failed, 0, JSON.stringify(r.failures));
        t.deepEqual(gaps(r), [], 'the slot went back to generation 1 before generation 2 got its stop signal');
        t.deepEqual(answered(r), [1, 2], 'generation 2 served in its window');
        await servesOnly(t, w, 80, false, 1);
        t.true(alive(first.pid), 'generation 1 never stopped');
      }),
  );
}

/**
 * baton is SIGKILLed under load; its generation serves on through the pinned link; a restarted baton
 * adopts it, starts generation 2 and retires the orphan. No gap across all of it; then generation 2
 * alone answers.
 */
async function takeover(t: ExecutionContext, mode: string, keepAlive: boolean, steering = port) {
  await inWorld(true, async (w) => {
    const args = [...steering, '--drain', '200ms', '--', 'node', fixture, mode];
    const first = w.baton(args);
    const active = await first.event('active', 1);
    const load = await w.hammer(80, keepAlive);
    await sleep(300);
    first.signal('SIGKILL');
    await first.exited;
    await sleep(700); // baton is down; the pinned link still steers
    t.true(alive(active.pid), 'the generation survives baton');
    const second = w.baton(args);
    const orphan = await second.event('orphan');
    t.is(orphan.pid, active.pid);
    const next = await second.event('active', 2);
    await exitOf(active.pid, 15_000);
    const r = await load.stop();
    t.deepEqual(gaps(r), []);
    t.is(answered(r)[0], 1);
    t.true(answered(r).every((n) => n <= 2));
    t.deepEqual(childrenOf(second.pid), [next.pid], 'the orphan is retired; generation 2 is the only child');
    await servesOnly(t, w, 80, keepAlive, 2);
    t.is((await second.stop()).code, 0);
    t.false(w.pinned());
  });
}

needs('bpf').serial('SIGKILL of baton in port mode: a restarted baton takes over, new connections, exit at once', (t) =>
  takeover(t, 'exit-on-term', false),
);

needs('bpf').serial('SIGKILL of baton in port mode: a restarted baton takes over, keep-alive, draining server', (t) =>
  takeover(t, 'good', true),
);

needs('bpf').serial('SIGKILL of baton, a socket per generation: a restarted baton takes over, exit at once', (t) =>
  takeover(t, 'exit-on-term', false, ['--steer', '127.0.0.1:80']),
);

needs('bpf').serial(
  'SIGKILL of baton in port mode during a canary window: the restarted one retires the old generation too',
  (t) =>
    inWorld(true, async (w) => {
      // No rollback after a crash: the slot points at generation 2, which the restarted baton takes over; the old
      // generation 1, draining and out of the slot, must not be left running by nobody.
      const args = [...port, '--drain', '3s', '--', 'node', fixture];
      const first = w.baton(args);
      const one = await first.event('active', 1);
      const load = await w.hammer(80, false);
      first.signal('SIGHUP');
      const two = await first.event('active', 2);
      await first.event('upgraded', 2);
      first.signal('SIGKILL');
      await first.exited;
      const second = w.baton(args);
      const orphans = [await second.event('orphan', 2), await second.event('orphan', 1)];
      t.deepEqual(
        orphans.map((o) => o.pid),
        [two.pid, one.pid],
      );
      const next = await second.event('active', 3);
      await exitOf(one.pid, 15_000);
      await exitOf(two.pid, 15_000);
      const r = await load.stop();
      t.deepEqual(gaps(r), []);
      t.deepEqual(childrenOf(second.pid), [next.pid]);
      await servesOnly(t, w, 80, false, 3);
      t.is((await second.stop()).code, 0);
    }),
);

needs('bpf').serial(
  'port mode: an orphan a restarted baton is retiring is retired by the program a self-upgrade execs into',
  (t) =>
    inWorld(true, async (w) => {
      const args = [...port, '--drain', '8s', '--', 'node', fixture];
      const first = w.baton(args);
      const one = await first.event('active', 1);
      first.signal('SIGKILL');
      await first.exited;
      const second = w.baton(args);
      await second.event('orphan', 1);
      await second.event('active', 2); // generation 1 left the slot: retired after the 8 s drain
      second.signal('SIGUSR2');
      await second.event('resumed');
      t.true(alive(one.pid), 'still draining when the new program took over');
      await exitOf(one.pid, 30_000);
      await servesOnly(t, w, 80, false, 2);
      t.is((await second.stop()).code, 0);
    }),
);

needs('bpf').serial('port mode: an old generation that exits during its drain is fine', (t) =>
  inWorld(true, async (w) => {
    const drain = 3000; // the test sees `upgraded` (and kills) well within it, even loaded
    const baton = w.baton([...port, '--drain', `${drain}ms`, '--', 'node', fixture]);
    const first = await baton.event('active', 1);
    baton.signal('SIGHUP');
    const second = await baton.event('active', 2);
    await baton.event('upgraded', 2); // baton has armed the drain timer of generation 1 by now
    const armed = Date.now();
    // It dies in its drain window, before baton's stop signal.
    process.kill(first.pid, 'SIGKILL');
    await exitOf(first.pid, 5000);
    t.falsy(
      baton.events.find((e) => e.event === 'stop' && e.generation === 1),
      'it was killed before its stop signal',
    );
    const load = await w.hammer(80);
    await sleep(Math.max(0, armed + drain + 1000 - Date.now())); // past the end of the drain window
    const r = await load.stop();
    t.is(baton.child.exitCode, null, 'baton is still running');
    t.deepEqual(gaps(r), []);
    t.deepEqual(answered(r), [2]);
    t.deepEqual(childrenOf(baton.pid), [second.pid], 'generation 2 serves on');
    t.is((await baton.stop()).code, 0);
  }),
);

needs('bpf', 'chattr').serial(
  'port mode: a steering state that cannot be written is warned of; the switch goes on',
  (t) =>
    inWorld(true, async (w) => {
      const baton = w.baton([...port, '--drain', '200ms', '--', 'node', fixture]);
      const first = await baton.event('active', 1);
      // As a full /run would: the state's directory takes no new file (immutable, even for root).
      spawnSync('chattr', ['+i', w.stateDir]);
      try {
        baton.signal('SIGHUP');
        await baton.event('active', 2);
        const warned = await baton.waitFor((e) => e.event === 'warning' && /^steering state/.test(String(e.message)));
        t.regex(String(warned.message), new RegExp(`^steering state in ${w.stateDir}: .*EPERM`));
        await exitOf(first.pid, 10_000); // drained and stopped, as after any switch
      } finally {
        spawnSync('chattr', ['-i', w.stateDir]);
      }
      await servesOnly(t, w, 80, false, 2);
      t.is((await baton.stop()).code, 0);
    }),
);

/**
 * The same with a shared listener (pidfd handover): the orphan holds baton's listener, which stays in the
 * slot; the restarted baton takes a copy of it from the orphan through the run record instead of binding.
 */
needs('bpf').serial('SIGKILL of baton with --steer and a shared listener: a restarted baton takes over', (t) =>
  inWorld(true, async (w) => {
    const env = { XDG_RUNTIME_DIR: scratch(t) };
    const shared = ['--shared-socket', '--listen', '127.0.0.1:7777'];
    const args = ['--steer', '127.0.0.1:80', ...shared, '--drain', '200ms', '--', 'node', fixture];
    const first = w.baton(args, env);
    const active = await first.event('active', 1);
    const load = await w.hammer(80, false);
    await sleep(300);
    first.signal('SIGKILL');
    await first.exited;
    await sleep(700); // baton is down; the orphan serves from the listener in the slot
    t.true(alive(active.pid), 'the generation survives baton');
    const second = w.baton(args, env);
    t.is((await second.event('orphan')).pid, active.pid);
    t.is((await second.event('listening')).taken, true, "the listener is the orphan's, not bound again");
    const next = await second.event('active', 2);
    await exitOf(active.pid, 15_000);
    const r = await load.stop();
    t.deepEqual(gaps(r), []);
    t.deepEqual(answered(r), [1, 2]);
    t.deepEqual(childrenOf(second.pid), [next.pid], 'the orphan is retired; generation 2 is the only child');
    await servesOnly(t, w, 80, false, 2);
    t.is((await second.stop()).code, 0);
    t.false(w.pinned());
  }),
);

const crashTitle =
  'port mode: a crash of the serving generation refuses connections until the restart answers; ' +
  'spawned within the backoff + 0.5 s';
needs('bpf').serial(crashTitle, (t) =>
  inWorld(true, async (w) => {
    const baton = w.baton([...port, '--', 'node', fixture]);
    const first = await baton.event('active', 1);
    // Two client loops: every refusal is answered at once, and more loops would only spin on the CPU the restart needs.
    const load = await w.run({ port: 80, keepAlive: false, concurrency: 2, maxMs: 30_000 });
    await sleep(300);
    const exited = exitOf(first.pid, 5000); // watching before the crash, so the time it sees is the crash's
    const killed = wallNow();
    process.kill(first.pid, 'SIGKILL');
    const crashed = await exited;
    const restart = await baton.event('active', 2, 10_000);
    await sleep(500);
    const r = await load.stop();
    const at = (s: [number, number, string, number]) => r.origin + s[0];
    const done = (s: [number, number, string, number]) => r.origin + s[0] + s[1];
    const byRestart = r.samples!.filter((s) => s[2] === 'ok' && s[3] === 2);
    t.true(byRestart.length > 0, 'the restart answered');
    const recovered = Math.min(...byRestart.map(done));
    const recovery = Math.round(recovered - crashed);
    const logged = (name: string, n: number) =>
      Date.parse(String(baton.events.find((e) => e.event === name && e.generation === n)?.time));
    const since = (name: string) => Math.round(logged(name, 2) - crashed);
    t.log(
      `from the crash (exit observed): spawn ${since('spawn')} ms, active ${since('active')} ms, ` +
        `first answer ${recovery} ms`,
    );
    t.true(recovery >= FIRST_BACKOFF_MS - 50, `not before the backoff: ${recovery} ms`);
    // baton's part is bounded, not the new process's own start (node under a loaded machine: up to a second).
    t.true(since('spawn') <= FIRST_BACKOFF_MS + 500, `spawned within 0.5 s after the backoff: ${since('spawn')} ms`);
    t.true(recovery - since('active') <= 500, `answering within 0.5 s of active: ${recovery} ms`);
    // docs/steering.md (Limits): until the restart is active, connections to the steered ports are refused.
    // Until baton has seen the exit, its copy of the dead generation's socket keeps that socket in the slot:
    // a connection that lands there is reset when baton closes the copy.
    const seen = logged('exit', 1) + 1; // the log's time has ms resolution
    const failed = r.samples!.filter((s) => s[2] !== 'ok');
    const inFlight = failed.filter((s) => at(s) < killed);
    const after = failed.filter((s) => at(s) >= killed);
    const reset = after.filter((s) => s[2] !== 'ECONNREFUSED');
    t.log(
      `failed: ${inFlight.length} in flight at the crash (${inFlight.map((s) => s[2]).join(', ')}), ` +
        `${after.length} after it: ${after.length - reset.length} refused, ${reset.length} reset ` +
        `(${Math.round(seen - killed)} ms to baton's exit line)`,
    );
    t.true(inFlight.length <= 2, 'at most one request per client loop was in flight at the crash');
    const late = reset.filter((s) => s[2] !== 'ECONNRESET' || at(s) > seen);
    t.deepEqual(late, [], 'refused, or reset before baton saw the exit');
    t.deepEqual(
      after.filter((s) => at(s) >= recovered),
      [],
      'nothing fails once the restart answers',
    );
    t.true(
      r.samples!.every((s) => s[1] < 1000),
      'no request waited (a refusal is immediate)',
    );
    t.deepEqual(childrenOf(baton.pid), [restart.pid]);
    await servesOnly(t, w, 80, false, 2);
    t.is((await baton.stop()).code, 0);
  }),
);

const readme = ['--steer', '0.0.0.0:8080', '--handover', 'port', '--', 'python3', '-m', 'http.server', '$PORT'];
needs('bpf', 'python3').serial(`the README's example: ${readme.join(' ').replace('$PORT', "'$PORT'")}`, (t) =>
  inWorld(true, async (w) => {
    const baton = w.baton(readme);
    const first = await baton.event('active', 1);
    const load = await w.hammer(8080);
    await sleep(300);
    await baton.upgradeTo(2);
    const second = baton.events.find((e) => e.event === 'active' && e.generation === 2)!;
    await exitOf(first.pid, 15_000);
    await sleep(300);
    const r = await load.stop();
    t.deepEqual(gaps(r), []);
    t.true(r.ok > 50, `${r.ok} requests`);
    t.deepEqual(childrenOf(baton.pid), [second.pid], 'generation 1 has exited; generation 2 alone serves');
    const after = await w.load({ port: 8080, keepAlive: false, concurrency: 2, maxRequests: 50, maxMs: 10_000 });
    t.deepEqual(gaps(after), []);
    t.is(after.ok, 50);
    t.is((await baton.stop()).code, 0, 'python ends by the stop signal: a clean stop (docs/cli.md, exit codes)');
    t.false(w.pinned());
  }),
);

needs('bpf').serial('a failed takeover leaves the orphan serving, with its pins and state', (t) =>
  inWorld(true, async (w) => {
    const first = w.baton([...port, '--', 'node', fixture]);
    const orphan = (await first.event('active', 1)).pid;
    first.signal('SIGKILL');
    await first.exited;
    const state = readFileSync(join(w.stateDir, 'state.json'), 'utf8');
    const owned = w.owned();
    const load = await w.hammer(80);
    // The restarted baton's generation 2 never becomes ready.
    const second = w.baton([...port, '--', 'node', fixture, 'exit-before-ready', '2']);
    t.is((await second.exited).code, 1);
    await sleep(300);
    const r = await load.stop();
    t.regex(second.stderr, /^error: generation 2 failed/m);
    t.truthy(second.events.find((e) => e.event === 'steering-kept'));
    t.deepEqual(gaps(r), [], 'the orphan served throughout');
    t.deepEqual(answered(r), [1]);
    t.deepEqual(w.owned(), owned, 'the pins and the state stay');
    t.is(readFileSync(join(w.stateDir, 'state.json'), 'utf8'), state, 'the state still names the orphan');
    t.true(alive(orphan), 'the orphan serves on');
    t.deepEqual(w.processes(), [orphan], 'nothing else is left in the namespace');
    t.false(existsSync(second.control), "the failed baton's control socket is gone");
  }),
);
