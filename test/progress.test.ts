import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import test from 'ava';
import { Baton, childrenOf, cli, ctl, fixture } from './helpers/baton.js';
import { needs } from './helpers/needs.js';
import { ended, sleep } from './helpers/procs.js';

/** The commands started and not yet ended: a failed test leaves none running once the file ends (--watch runs on). */
const running = new Set<ChildProcess>();
test.after.always(() => {
  for (const child of running) child.kill('SIGKILL');
});

/** `baton ARGS` (a control command) run to its end or `stop`, its stdout read as it comes. */
function command(args: string[], tty = false) {
  const line = [process.execPath, cli, ...args];
  const argv = tty ? ['script', '-qec', line.join(' '), '/dev/null'] : line;
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let [stdout, stderr] = ['', ''];
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  running.add(child);
  void exited.then(() => {
    clearTimeout(timer);
    running.delete(child);
  });
  return { child, exited, out: () => stdout, err: () => stderr };
}

const ESC = String.fromCharCode(27);
/** What clears a terminal and puts the cursor top left. */
const CLEAR = `${ESC}[H${ESC}[2J`;

/** Resolves once `f()` holds, checked every 20 ms for up to `ms`. */
async function until(what: string, f: () => boolean, ms = 20_000): Promise<void> {
  for (const end = Date.now() + ms; !f(); await sleep(20))
    if (Date.now() > end) throw new Error(`${what}: not in time`);
}

const connect = (port: number) =>
  new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s)).on('error', reject);
  });

/** Two idle connections to generation 1, one of them closed while it drains; the progress of the upgrade. */
async function progressOf(tty: boolean) {
  const baton = new Baton(['--listen', '127.0.0.1:0', '--drain', '4s', '--', 'node', fixture]);
  try {
    const one = (await baton.event('active', 1)).pid;
    const port = await baton.port();
    const [a, b] = [await connect(port), await connect(port)];
    const reload = command(['reload', '--wait', '--progress', '--control', baton.control], tty);
    await until('two connections counted', () => /1 pid \d+: 2 connection\(s\) open/.test(reload.out()));
    a.destroy();
    await until('one connection counted', () => /1 pid \d+: 1 connection\(s\) open/.test(reload.out()));
    const code = await reload.exited;
    const exitedFirst = ended(one); // the command returns once generation 1 has exited
    b.destroy();
    const two = baton.events.find((e) => e.event === 'spawn' && e.generation === 2)!.pid;
    return { out: reload.out(), err: reload.err(), code, one, two, exitedFirst };
  } finally {
    await baton.stop();
  }
}

/** The steps in order, each on a line of its own, with the pids that really ran. */
function steps(one: number, two: number): RegExp[] {
  return [
    new RegExp(`^ +\\d+\\.\\d{3}s spawned generation 2 pid ${two}$`),
    new RegExp(`^ +\\d+\\.\\d{3}s grabbed generation 2 pid ${two} the listeners after \\d+ms$`),
    new RegExp(`^ +\\d+\\.\\d{3}s ready generation 2 pid ${two} after \\d+ms$`),
    new RegExp(`^ +\\d+\\.\\d{3}s active generation 2 pid ${two}$`),
    new RegExp(`^ +\\d+\\.\\d{3}s draining generation 1 pid ${one} \\(stopped in 4000ms\\)$`),
    /^ +\d+\.\d{3}s all active generation 2: 1 worker\(s\) in \d+ms, canary window 4000ms$/,
    new RegExp(`^ +\\d+\\.\\d{3}s draining generation 1 pid ${one}: 2 connection\\(s\\) open$`),
    new RegExp(`^ +\\d+\\.\\d{3}s draining generation 1 pid ${one}: 1 connection\\(s\\) open$`),
    new RegExp(`^ +\\d+\\.\\d{3}s stopping generation 1 pid ${one} with SIGTERM$`),
    new RegExp(`^ +\\d+\\.\\d{3}s stopped generation 1 pid ${one}: exited with code 0$`),
    /^generation 2 is active \(upgrade took \d+ms\)$/,
  ];
}

test('reload --wait --progress, not a terminal: one line per step, until the old process has exited', async (t) => {
  const r = await progressOf(false);
  t.is(r.code, 0, r.err);
  t.true(r.exitedFirst, 'generation 1 had exited when the command returned');
  // A count that changed again while the old process stopped (its server closed the idle connection) is a line too.
  const lines = r.out.split('\n').filter(Boolean);
  const wanted = steps(r.one, r.two);
  const seen = wanted.map((re) => lines.findIndex((l) => re.test(l)));
  t.deepEqual(
    seen.map((i) => i >= 0),
    wanted.map(() => true),
    r.out,
  );
  t.deepEqual(
    seen,
    [...seen].sort((x, y) => x - y),
    `in order:\n${r.out}`,
  );
  t.false(r.out.includes('\r') || r.out.includes(ESC), 'no terminal control');
});

needs('script')('reload --wait --progress on a terminal: the connections count down in place', async (t) => {
  const r = await progressOf(true);
  t.is(r.code, 0, r.err);
  const esc = `\\r\\x1b\\[K`;
  t.regex(
    r.out,
    new RegExp(`2 connection\\(s\\) open${esc} +\\d+\\.\\d{3}s draining generation 1 pid ${r.one}: 1 conn`),
  );
  t.regex(r.out, /generation 2 is active/);
});

test('reload --wait --progress of a release that fails: its steps, the rollback and exit 1', async (t) => {
  const baton = new Baton(['--listen', '127.0.0.1:0', '--', 'node', fixture, 'exit-before-ready', '2']);
  try {
    await baton.event('active', 1);
    const r = command(['reload', '--wait', '--progress', '--control', baton.control]);
    t.is(await r.exited, 1);
    const two = baton.events.find((e) => e.event === 'spawn' && e.generation === 2)!.pid;
    t.regex(r.out(), new RegExp(`spawned generation 2 pid ${two}\\n`));
    t.regex(r.out(), /rolled back generation 2: /);
    t.regex(r.err(), /^error: upgrade to generation 2 failed: /m);
  } finally {
    await baton.stop();
  }
});

test('reload --wait --progress that timed out while queued: the upgrade serving it later lets baton end', async (t) => {
  // Each upgrade's --check takes 1 s: the second request waits behind the first, and gives up first.
  const baton = new Baton(['--listen', '127.0.0.1:0', '--check', 'sleep 1', '--drain', '0', '--', 'node', fixture]);
  try {
    await baton.event('active', 1);
    t.is((await ctl(baton, 'reload')).code, 0);
    const queued = command(['reload', '--wait', '--progress', '--timeout', '300ms', '--control', baton.control]);
    t.not(await queued.exited, 0, 'it timed out');
    await baton.event('upgraded', 2);
    await baton.event('upgraded', 3); // its request, served after all
    baton.signal('SIGTERM');
    await baton.event('stopped');
    const exited = await Promise.race([baton.exited.then(() => true), sleep(5000).then(() => false)]);
    t.true(exited, 'baton exited once stopped');
  } finally {
    if (baton.child.exitCode === null && baton.child.signalCode === null) {
      // One that did not exit leaves no generation behind.
      for (const pid of childrenOf(baton.pid)) process.kill(pid, 'SIGKILL');
      baton.signal('SIGKILL');
    }
    await baton.exited;
  }
});

test('status --watch: a status every second until SIGINT (exit 0); --json one object a line', async (t) => {
  const baton = new Baton(['--listen', '127.0.0.1:0', '--', 'node', fixture]);
  try {
    await baton.event('active', 1);
    const text = command(['status', '--watch', '--control', baton.control]);
    const json = command(['status', '--watch', '--json', '--control', baton.control]);
    const frames = () => text.out().match(/^baton pid \d+ /gm)?.length ?? 0;
    await until('three statuses', () => frames() >= 3 && json.out().split('\n').length > 3);
    text.child.kill('SIGINT');
    json.child.kill('SIGINT');
    t.is(await text.exited, 0, text.err());
    t.is(await json.exited, 0, json.err());
    t.regex(text.out(), new RegExp(`^baton pid ${baton.pid} .*\\n  listener listener0 127\\.0\\.0\\.1:\\d+`, 'm'));
    const objects = json
      .out()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { pid: number });
    t.true(objects.length >= 3 && objects.every((o) => o.pid === baton.pid));
  } finally {
    await baton.stop();
  }
});

test('status --watch goes on when baton stops, saying so; --progress without reload --wait is refused', async (t) => {
  const baton = new Baton(['--listen', '127.0.0.1:0', '--', 'node', fixture]);
  t.teardown(() => baton.stop());
  await baton.event('active', 1);
  const watch = command(['status', '--watch', '--control', baton.control]);
  await until('a status', () => /^baton pid/m.test(watch.out()));
  await baton.stop();
  await until('the baton is gone', () => /^baton: no baton is running at /m.test(watch.out()));
  watch.child.kill('SIGTERM');
  t.is(await watch.exited, 0);
  const refused = command(['reload', '--progress', '--control', baton.control]);
  t.is(await refused.exited, 2);
  t.regex(refused.err(), /^error: --progress needs reload --wait\nhint: run baton reload --wait --progress\n$/);
});

needs('script')('status --watch on a terminal redraws in place', async (t) => {
  const baton = new Baton(['--listen', '127.0.0.1:0', '--', 'node', fixture]);
  try {
    await baton.event('active', 1);
    const watch = command(['status', '--watch', '--control', baton.control], true);
    await until('two redraws', () => watch.out().split(CLEAR).length > 2);
    watch.child.kill('SIGINT');
    await watch.exited;
    const frame = watch.out().split(CLEAR)[1]!;
    t.regex(frame, /^\d{4}-\d\d-\d\dT[\d:.]+Z, every 1s \(Ctrl-C ends\)\r?\nbaton pid/);
  } finally {
    await baton.stop();
  }
});
