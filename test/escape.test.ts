// Nothing escapes: processes that leave a generation's process group are stopped with it, holders of a
// listener outside every generation are named by status, and a generation without its listener is told.
import { readlinkSync } from 'node:fs';
import test, { type ExecutionContext } from 'ava';
import { Baton, fixture, statusOf } from './helpers/baton.js';
import { get } from './helpers/load.js';
import { needs } from './helpers/needs.js';
import { lineage, pidsFile, readOr, socketsOf, startTime, until } from './helpers/procs.js';

/** The pids the `escape` fixture mode recorded (one line each), once there are `n`; killed after the test. */
async function escapees(p: ReturnType<typeof pidsFile>, n: number): Promise<number[]> {
  const lines = () => readOr(p.file).split('\n').filter(Boolean);
  const pids = (await until(`${n} escapee(s)`, () => (lines().length >= n ? lines() : undefined))).map(Number);
  p.pids.splice(0, p.pids.length, ...pids);
  return pids;
}

/** Resolves once `pid` (started at `start`) has exited: gone, a zombie, or its pid taken by another. */
const gone = (pid: number, start: string | undefined) =>
  until(`pid ${pid} gone`, () => (startTime(pid) === start ? undefined : true), 5_000);

/** baton's `escaped` lines about `generation`, joined. */
const escapedLines = (baton: Baton, generation: number) =>
  baton.events
    .filter((e) => e.event === 'escaped' && e.generation === generation)
    .map((e) => `${e.signal}: ${e.message}`)
    .join('\n');

// ---- F5: a descendant in a session of its own, ignoring SIGTERM, holding the listener ----

const escapes = [
  { how: 'detached', subreaper: false },
  { how: 'detached', subreaper: true },
  // setsid -f: its parent exits at once, so it is reparented: to baton only as a subreaper.
  { how: 'daemon', subreaper: true },
];

for (const { how, subreaper } of escapes) {
  const flag = subreaper ? ' --subreaper' : '';
  const title = `escape:${how}${flag}: stopped with its generation at an upgrade and at stop`;
  test.serial(title, async (t) => {
    const p = pidsFile(t);
    const args = [...(subreaper ? ['--subreaper'] : []), '--listen', '127.0.0.1:0', '--drain', '100ms'];
    const baton = new Baton([...args, '--', 'node', fixture, `escape:${how}`], { ESCAPEES: p.file });
    try {
      const leader = (await baton.event('active', 1)).pid;
      const [first] = await escapees(p, 1);
      t.not(lineage(first!)?.pgid, leader, 'it left the process group');
      const start = startTime(first!);
      await baton.upgradeTo(2);
      await baton.event('exit', 1);
      await gone(first!, start);
      t.regex(escapedLines(baton, 1), new RegExp(`^SIGTERM: pid ${first} \\(sleep 300\\) left`, 'm'));
      const [, second] = await escapees(p, 2);
      const start2 = startTime(second!);
      t.is((await baton.stop()).code, 0);
      await gone(second!, start2);
      t.regex(escapedLines(baton, 2), new RegExp(`pid ${second} \\(sleep 300\\) left`));
    } finally {
      await baton.stop();
    }
  });
}

test.serial('status names a process that holds the listener outside any generation', async (t) => {
  const p = pidsFile(t);
  const baton = new Baton(['--listen', '127.0.0.1:0', '--', 'node', fixture, 'escape:daemon'], { ESCAPEES: p.file });
  try {
    const leader = (await baton.event('active', 1)).pid;
    const [daemon] = await escapees(p, 1);
    // It writes its pid, then execs sleep.
    await until('sleep in place of sh', () => readOr(`/proc/${daemon}/comm`).trim() === 'sleep' || undefined);
    t.not(lineage(daemon!)?.ppid, leader, 'orphaned: no longer in the generation');
    const s = await statusOf(baton);
    t.like(s.strays, [{ pid: daemon, command: 'sleep 300', listener: 'listener0', generation: 1 }]);
    t.is(s.strays.length, 1, 'the generation itself is no stray');
  } finally {
    await baton.stop();
  }
});

// ---- F13: a generation without its listener ----

/** The listener as /proc names it in baton (socket:[inode]). */
async function listenerSocket(baton: Baton): Promise<string> {
  await baton.event('config');
  const fd = baton.events.find((e) => e.event === 'listening')!.fd;
  return readlinkSync(`/proc/${baton.pid}/fd/${fd}`);
}

// Root: it reads baton's /proc/PID/fd (or maps), which belong to root once baton is not dumpable.
needs('root').serial('a generation that closes its listener after ready: status and the log say so', async (t) => {
  const baton = new Baton(['--listen', '127.0.0.1:0', '--ready', 'notify', '--', 'node', fixture, 'closefd:200']);
  try {
    const leader = (await baton.event('active', 1)).pid;
    const listener = await listenerSocket(baton);
    await until('the listener closed in generation 1', () => (socketsOf(leader).includes(listener) ? undefined : true));
    const s = await statusOf(baton);
    t.like(s.generations, [{ number: 1, pid: leader, state: 'active', holds: { held: 0, of: 1 } }]);
    const logged = await baton.event('listener-dropped', 1, 5_000);
    t.is(logged.pid, leader);
    t.regex(String(logged.message), /^holds 0 of 1 listener\(s\) after it was ready/);
  } finally {
    await baton.stop();
  }
});

/** Generation 1 answers, with the pid it had before: `n` fresh connections. */
async function answeredBy(t: ExecutionContext, port: number, pid: number, n = 10): Promise<void> {
  for (let i = 0; i < n; i++) t.regex(await get(port), new RegExp(`^pid=${pid} generation=1 `));
}

test.serial('an upgrade to a generation holding no listener is rolled back; the old pid serves on', async (t) => {
  const args = ['--listen', '127.0.0.1:0', '--ready', 'notify', '--ready-timeout', '5s', '--drain', '100ms'];
  const baton = new Baton([...args, '--', 'node', fixture, 'unheld', '2']);
  try {
    const leader = (await baton.event('active', 1)).pid;
    const port = await baton.port();
    await answeredBy(t, port, leader);
    baton.signal('SIGHUP');
    const rollback = await baton.event('rollback', 2);
    // Told at READY=1; or, had baton not seen it take the listener at all, at the ready-timeout.
    t.regex(String(rollback.message), /^(holds 0 of 1 listener\(s\)|ready, but did not take every listener)/);
    const failed = baton.events.find((e) => e.event === 'failed' && e.generation === 2)!;
    await until('generation 2 gone', () => (startTime(failed.pid) === undefined ? true : undefined));
    await answeredBy(t, port, leader);
    const s = await statusOf(baton);
    t.like(s.generations, [{ number: 1, pid: leader, state: 'active', holds: { held: 1, of: 1 } }]);
    t.like(s.upgrades.at(-1), { ok: false, generation: 2 });
    t.false(
      baton.events.some((e) => e.event === 'stop' && e.generation === 1),
      'generation 1 was never stopped',
    );
  } finally {
    await baton.stop();
  }
});

test.serial('an active generation that drops its listener during the drain: the old one is not retired', async (t) => {
  const args = ['--listen', '127.0.0.1:0', '--ready', 'notify', '--drain', '500ms'];
  const baton = new Baton([...args, '--', 'node', fixture, 'closefd:200', '2']);
  try {
    const leader = (await baton.event('active', 1)).pid;
    const port = await baton.port();
    baton.signal('SIGHUP');
    const second = await baton.event('active', 2);
    // Reported by the retirement itself (no status asked): generation 2 dropped it 200 ms after READY=1.
    const dropped = await baton.event('listener-dropped', 2, 5_000);
    t.is(dropped.pid, second.pid);
    await new Promise((r) => setTimeout(r, 1500)); // three drains past the first
    t.false(
      baton.events.some((e) => e.event === 'stop' && e.generation === 1),
      'generation 1 got no stop signal',
    );
    t.truthy(startTime(leader), 'generation 1 runs');
    await answeredBy(t, port, leader);
  } finally {
    t.is((await baton.stop()).code, 0);
  }
});
