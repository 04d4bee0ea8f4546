// A baton killed by SIGKILL leaves its generations serving from their copies of the listener; a baton
// started with the same --listen finds them through the run record, takes a copy of the listener from them
// instead of binding, starts the next generation and retires them (issue 18, point 1; F11).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { startTime as kernelStartTime } from '../supervisor/sys/proc.js';
import { Baton, childrenOf, fixture, statusOf } from './helpers/baton.js';
import { scratch } from './helpers/leftovers.js';
import { freePort, gaps, hammer, servedBy } from './helpers/load.js';
import { needs } from './helpers/needs.js';
import { ended, startTime } from './helpers/procs.js';

const NOBODY = 65534;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves once `pid` (started at `started`) is gone; throws after `ms`. */
async function gone(pid: number, started: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (startTime(pid) === started && Date.now() < deadline) await sleep(20);
  if (startTime(pid) === started) throw new Error(`pid ${pid} still runs after ${ms} ms`);
}

/** Kills what a failed test may have left: the process groups of `pids`, if they are still the same processes. */
function cleanup(t: ExecutionContext, procs: Array<{ pid: number; started?: string }>): void {
  t.teardown(() => {
    for (const p of procs) {
      if (p.started && startTime(p.pid) === p.started) {
        try {
          process.kill(-p.pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
  });
}

/** A runtime base of the test's own: the run record lives there. */
function runtime(t: ExecutionContext): NodeJS.ProcessEnv {
  return { XDG_RUNTIME_DIR: scratch(t) };
}

async function takeover(t: ExecutionContext, handover: string) {
  const port = await freePort();
  const env = runtime(t);
  const args = ['--listen', `127.0.0.1:${port}`, '--handover', handover, '--drain', '3s', '--', 'node', fixture];
  const first = new Baton(args, env);
  const one = await first.event('active', 1);
  const load = hammer({ port, keepAlive: false, concurrency: 4, maxMs: 30_000 });
  await sleep(300);
  await first.upgradeTo(2);
  const two = await first.event('active', 2);
  const procs = [one, two].map((e) => ({ pid: e.pid, started: startTime(e.pid) }));
  cleanup(t, procs);
  await first.event('upgraded', 2);
  // Mid-drain: generation 1 still drains, generation 2 serves.
  first.signal('SIGKILL');
  await first.exited;
  await sleep(500);
  t.true(
    procs.every((p) => startTime(p.pid) === p.started),
    'both generations outlive baton',
  );
  const second = new Baton(args, env);
  t.teardown(() => second.stop()); // also where an assertion throws half-way (it was seen left running)
  const three = await second.event('active', 3);
  cleanup(t, [{ pid: three.pid, started: startTime(three.pid) }]);
  const s = await statusOf(second);
  t.deepEqual(
    s.orphans?.map((o) => [o.number, o.pid]).sort(),
    [
      [1, one.pid],
      [2, two.pid],
    ],
    'status shows the orphans until they are gone',
  );
  t.deepEqual(s.strays, [], 'the orphans hold the listener, but they are not strays');
  for (const p of procs) await gone(p.pid, p.started!, 15_000);
  t.deepEqual(childrenOf(second.pid), [three.pid], 'generation 3 is the only process');
  t.deepEqual((await statusOf(second)).orphans, []);
  await sleep(300);
  const r = await load.stop();
  t.deepEqual(gaps(r), [], 'no failed request, no gap across SIGKILL of baton and the takeover');
  t.true(r.ok > 0);
  t.deepEqual(await servedBy(port, 3), [], 'generation 3 alone answers');
  t.is((await second.stop()).code, 0);
  t.true(ended(three.pid));
  const base = join(env.XDG_RUNTIME_DIR!, 'baton');
  t.deepEqual(existsSync(base) ? readdirSync(base) : [], [], 'the run record is removed by a clean stop');
}

needs('root').serial('SIGKILL of baton mid-drain under load: a restarted baton takes over (pidfd handover)', (t) =>
  takeover(t, 'pidfd'),
);

needs('root').serial('SIGKILL of baton mid-drain under load: a restarted baton takes over (inherit handover)', (t) =>
  takeover(t, 'inherit'),
);

needs('root')('a restart whose new generation fails leaves the orphans serving, for the next baton', async (t) => {
  const port = await freePort();
  const env = runtime(t);
  const listen = ['--listen', `127.0.0.1:${port}`];
  const first = new Baton([...listen, '--', 'node', fixture], env);
  const one = await first.event('active', 1);
  const started = startTime(one.pid)!;
  cleanup(t, [{ pid: one.pid, started }]);
  first.signal('SIGKILL');
  await first.exited;
  const failing = new Baton([...listen, '--', 'node', fixture, 'exit-before-ready'], env);
  t.not((await failing.exited).code, 0);
  t.is(startTime(one.pid), started, 'the orphan was not stopped');
  t.deepEqual(await servedBy(port, 1, 5), [], 'and serves on');
  const third = new Baton([...listen, '--', 'node', fixture], env);
  const two = await third.event('active', 2);
  await gone(one.pid, started, 15_000);
  t.deepEqual(await servedBy(port, 2, 5), []);
  t.deepEqual(childrenOf(third.pid), [two.pid]);
  t.is((await third.stop()).code, 0);
});

/**
 * A process of the test's listening on `port` (its environment `env` over the test's, given the notify path), named
 * in a record in `base` as generation 1 of a dead baton, with a runtime directory of the kind baton makes holding a
 * file of the kind it removes from a dead baton's.
 */
async function plantRecord(t: ExecutionContext, base: string, port: number, env = (_notify: string) => ({})) {
  const runtimeDir = mkdtempSync(join(tmpdir(), 'baton-'));
  t.teardown(() => rmSync(runtimeDir, { recursive: true, force: true }));
  const notify = join(runtimeDir, 'notify-1-0.sock');
  writeFileSync(notify, '');
  const listen = `require('net').createServer().listen(${port}, '127.0.0.1')`;
  const stranger = spawn('node', ['-e', listen], { stdio: 'ignore', env: { ...process.env, ...env(notify) } });
  const pid = stranger.pid!;
  t.teardown(() => stranger.kill('SIGKILL'));
  await sleep(500);
  // The record's name: the first 16 hex digits of the sha256 of the network namespace and the --listen
  // addresses (sorted), one per line. The start time is the kernel's (clock ticks), as baton records it.
  const netns = statSync('/proc/self/ns/net').ino;
  const hash = createHash('sha256').update(`netns:${netns}\n127.0.0.1:${port}`).digest('hex').slice(0, 16);
  const generation = { number: 1, worker: 0, pid, starttime: kernelStartTime(pid), startedAt: 0, notify };
  const record = { pid: 999_999, starttime: '1', runtimeDir, generations: [generation] };
  writeFileSync(join(base, `listen-${hash}.json`), JSON.stringify(record));
  return { pid, started: startTime(pid)!, notify };
}

needs('root')('a run record is believed only for processes baton started: a forged one signals nothing', async (t) => {
  const port = await freePort();
  const env = runtime(t);
  const base = join(env.XDG_RUNTIME_DIR!, 'baton');
  mkdirSync(base, { mode: 0o700 });
  // Its environment is not a generation's.
  const { pid, started, notify } = await plantRecord(t, base, port);
  const baton = new Baton(['--listen', `127.0.0.1:${port}`, '--', 'node', fixture], env);
  t.is((await baton.exited).code, 1);
  t.regex(baton.stderr, new RegExp(`pid ${pid} \\(node -e`), 'the error names the process that holds the address');
  t.regex(baton.stderr, new RegExp(`kill ${pid}\\b`));
  t.is(startTime(pid), started, 'the stranger was neither signalled nor taken from');
  t.true(existsSync(notify), 'nothing was removed from a directory the record named');
});

needs('root')(
  'a run record in a directory another user owns is not read: a process planted in it is not taken',
  async (t) => {
    const port = await freePort();
    const env = runtime(t);
    // The runtime base made by another user before baton.
    const base = join(env.XDG_RUNTIME_DIR!, 'baton');
    mkdirSync(base, { mode: 0o755 });
    chownSync(base, NOBODY, NOBODY);
    // This time the process has what baton's own generation would have in its environment (anyone can set it).
    const planted = (notify: string) => ({ NOTIFY_SOCKET: notify, BATON_GENERATION: '1' });
    const { pid, started, notify } = await plantRecord(t, base, port, planted);
    const baton = new Baton(['--listen', `127.0.0.1:${port}`, '--', 'node', fixture], env);
    t.is((await baton.exited).code, 1);
    t.false(
      baton.events.some((e) => e.event === 'orphan'),
      'nothing was taken over',
    );
    t.regex(baton.stderr, new RegExp(`pid ${pid} \\(node -e`), 'the address is in use, by the stranger');
    t.is(startTime(pid), started, 'the stranger was neither signalled nor taken from');
    t.true(existsSync(notify), 'nothing was removed from a directory the record named');
  },
);

needs('root')('a second baton on the same --listen names the running one', async (t) => {
  const port = await freePort();
  const env = runtime(t);
  const args = ['--listen', `127.0.0.1:${port}`, '--', 'node', fixture];
  const first = new Baton(args, env);
  const one = await first.event('active', 1);
  const second = new Baton(args, env);
  t.is((await second.exited).code, 1);
  t.regex(second.stderr, new RegExp(`a baton already listens on 127\\.0\\.0\\.1:${port} \\(pid ${first.pid}\\)`));
  t.regex(second.stderr, new RegExp(`kill ${first.pid}`));
  t.deepEqual(await servedBy(port, 1, 3), [], 'the first one serves on');
  t.deepEqual(childrenOf(first.pid), [one.pid]);
  t.is((await first.stop()).code, 0);
});

needs('root')('orphans still being retired are retired by the program a self-upgrade execs into', async (t) => {
  const port = await freePort();
  const env = runtime(t);
  // The self-upgrade (a node start for its check, then the execve) takes seconds on a loaded machine.
  const args = ['--listen', `127.0.0.1:${port}`, '--drain', '8s', '--', 'node', fixture];
  const first = new Baton(args, env);
  const one = await first.event('active', 1);
  const orphan = { pid: one.pid, started: startTime(one.pid) };
  cleanup(t, [orphan]);
  first.signal('SIGKILL');
  await first.exited;
  const second = new Baton(args, env);
  await second.event('active', 2);
  second.signal('SIGUSR2'); // within the orphan's 8 s drain
  await second.event('resumed');
  t.is(startTime(orphan.pid), orphan.started, 'still draining when the new program took over');
  t.deepEqual(
    (await statusOf(second)).orphans?.map((o) => o.pid),
    [orphan.pid],
  );
  await gone(orphan.pid, orphan.started!, 20_000);
  t.deepEqual((await statusOf(second)).orphans, []);
  t.deepEqual(await servedBy(port, 2, 5), []);
  t.is((await second.stop()).code, 0);
});
