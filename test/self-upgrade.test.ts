// A self-upgrade (SIGUSR2) cannot kill baton (issue 18, point 2): signals during the execve (F1), a new
// build that cannot start (F2), the control socket across the execve (F12), a failed execve, and baton's
// oom_score_adj against its children's. Real processes; what is checked is what the kernel and clients see.
import test, { type ExecutionContext } from 'ava';
import { appendFileSync, cpSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { request } from '../supervisor/control/client.js';
import type { Status } from '../supervisor/status.js';
import { startTime } from '../supervisor/sys/proc.js';
import { Baton, fixture, root, type LogEvent } from './helpers/baton.js';
import { Leftovers } from './helpers/leftovers.js';
import { gaps, hammer, servedBy, type LoadResult } from './helpers/load.js';
import { exclusive } from './helpers/lock.js';
import { sleep, tail } from './helpers/procs.js';
import { Deploy } from './helpers/releases.js';

/** Two loads until stop(): a new connection per request, and keep-alive. */
function load(port: number) {
  const fresh = hammer({ port, keepAlive: false, concurrency: 2, maxMs: 110_000 });
  const kept = hammer({ port, keepAlive: true, concurrency: 2, maxMs: 110_000 });
  return { stop: async (): Promise<LoadResult[]> => [await fresh.stop(), await kept.stop()] };
}

async function status(control: string): Promise<Status> {
  const reply = await request(control, { command: 'status' }, 10_000);
  if (!reply.ok) throw new Error(JSON.stringify(reply));
  return reply.status as Status;
}

/** A baton with a control path the leftovers check knows, and its own private directories. */
function start(args: string[], opts: { prefix?: string[]; entry?: string } = {}) {
  const control = join(mkdtempSync(join(tmpdir(), 'baton-su-')), 'control.sock');
  const full = ['--control', control, ...args];
  const leftovers = new Leftovers(full);
  const baton = new Baton(full, leftovers.env, opts.prefix, opts.entry);
  return { baton, control, leftovers, close: () => rmSync(dirname(control), { recursive: true, force: true }) };
}

/** Runs `body` with a baton under load (held alone on the machine); then a clean stop, nothing left behind. */
async function underLoad(t: ExecutionContext, args: string[], body: (b: Baton, port: number, control: string) => Promise<void>) {
  const release = await exclusive();
  const { baton, control, leftovers, close } = start(['--listen', '127.0.0.1:0', '--drain', '100ms', ...args]);
  let traffic: ReturnType<typeof load> | undefined;
  let checked = false;
  try {
    await baton.event('active', 1);
    const port = await baton.port();
    traffic = load(port);
    await sleep(200);
    await body(baton, port, control);
    await sleep(300);
    for (const r of await traffic.stop()) t.deepEqual(gaps(r), [], `${r.ok} requests`);
    t.is((await baton.stop()).code, 0, tail(baton));
    checked = true;
    t.deepEqual(await leftovers.check(baton.stderr), [], 'nothing left behind');
  } finally {
    await traffic?.stop();
    if (!checked) {
      await Promise.race([baton.stop(), sleep(10_000)]);
      await leftovers.check(baton.stderr);
    }
    close();
    release();
  }
}

const after = (baton: Baton, from: number, match: (e: LogEvent) => boolean, ms = 30_000) => baton.waitFor(match, ms, from);

/** A copy of this build whose cli.js does not parse: a deploy of a broken build. */
function brokenBuild(): string {
  const dir = mkdtempSync(join(tmpdir(), 'baton-broken-'));
  for (const f of ['dist', 'package.json', 'bpf']) cpSync(join(root, f), join(dir, f), { recursive: true });
  appendFileSync(join(dir, 'dist/supervisor/cli.js'), '\nsyntax error here (\n');
  return dir;
}

test.serial('F2: a self-upgrade into a build that cannot start is refused; baton and its generation serve on', async (t) => {
  const deploy = new Deploy();
  const broken = brokenBuild();
  try {
    deploy.activate(root);
    const release = await exclusive();
    const { baton, control, leftovers, close } = start(['--listen', '127.0.0.1:0', '--drain', '100ms', '--', 'node', fixture], { entry: deploy.cli });
    let traffic: ReturnType<typeof load> | undefined;
    try {
      const first = await baton.event('active', 1);
      const port = await baton.port();
      const started = startTime(baton.pid);
      const socket = statSync(control).ino;
      traffic = load(port);
      await sleep(200);
      deploy.activate(broken);
      let from = baton.events.length;
      baton.signal('SIGUSR2');
      const failed = await after(baton, from, (e) => e.event === 'self-upgrade-failed');
      t.regex(String(failed.message), /SyntaxError/, 'the reason is the end of the check\'s stderr');
      t.false(baton.events.slice(from).some((e) => e.event === 'self-upgrade'), 'no execve was tried');
      await sleep(300);
      t.is(startTime(baton.pid), started, 'the same baton process');
      t.like(await status(control), { pid: baton.pid, generations: [{ number: 1, pid: first.pid, state: 'active' }] });
      t.is(statSync(control).ino, socket, 'the control socket was never closed');
      t.deepEqual(await servedBy(port, 1), [], 'generation 1 serves on');
      await baton.upgradeTo(2);
      await baton.event('exit', 1);
      t.deepEqual(await servedBy(port, 2), [], 'a SIGHUP still upgrades');
      deploy.activate(root);
      from = baton.events.length;
      baton.signal('SIGUSR2');
      t.is((await after(baton, from, (e) => e.event === 'resumed')).serving, 2, 'a good build is taken');
      t.is(startTime(baton.pid), started);
      await sleep(300);
      for (const r of await traffic.stop()) t.deepEqual(gaps(r), [], `${r.ok} requests`);
      t.is((await baton.stop()).code, 0, tail(baton));
      t.deepEqual(await leftovers.check(baton.stderr), []);
    } finally {
      await traffic?.stop();
      if (baton.child.exitCode === null) baton.child.kill('SIGKILL');
      close();
      release();
    }
  } finally {
    deploy.remove();
    rmSync(broken, { recursive: true, force: true });
  }
});
