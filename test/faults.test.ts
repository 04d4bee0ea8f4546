import test from 'ava';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { alive, Baton, childrenOf, fixture } from './helpers/baton.js';
import { get, hammer } from './helpers/load.js';

const listen = ['--listen', '127.0.0.1:0'];

test('a generation that exits before ready is rolled back; the next SIGHUP tries again', async (t) => {
  const baton = new Baton([...listen, '--drain', '100ms', '--', 'node', fixture, 'exit-before-ready', '2']);
  try {
    await baton.event('active', 1);
    const port = await baton.port();
    baton.signal('SIGHUP');
    const rollback = await baton.event('rollback');
    t.is(rollback.generation, 2);
    t.is(rollback.serving, 1);
    t.regex(String(rollback.message), /exited with code 3 before ready/);
    t.regex(await get(port), /generation=1/);
    await baton.upgradeTo(3);
    await baton.event('exit', 1);
    t.regex(await get(port), /generation=3/);
  } finally {
    t.is((await baton.stop()).code, 0);
  }
});

test('a generation never ready is killed after --ready-timeout; the old one keeps serving', async (t) => {
  const baton = new Baton([...listen, '--ready', 'notify', '--ready-timeout', '800ms', '--', 'node', fixture, 'never-ready', '2']);
  try {
    await baton.event('active', 1);
    baton.signal('SIGHUP');
    const rollback = await baton.event('rollback');
    t.regex(String(rollback.message), /not ready within 800ms/);
    const exit = await baton.event('exit', 2);
    t.is(exit.code, 137);
    t.regex(await get(await baton.port()), /generation=1/);
    t.is(childrenOf(baton.pid).length, 1);
  } finally {
    await baton.stop();
  }
});

test('a generation that ignores SIGTERM is killed after --kill-timeout', async (t) => {
  const baton = new Baton([...listen, '--drain', '0', '--kill-timeout', '500ms', '--', 'node', fixture, 'ignore-term', '1']);
  try {
    await baton.event('active', 1);
    await baton.upgradeTo(2);
    const kill = await baton.event('kill', 1);
    t.regex(String(kill.message), /did not exit within 500ms of SIGTERM/);
    const exit = await baton.event('exit', 1);
    t.is(exit.message, 'killed by SIGKILL');
    t.true(Number(exit.exit) - Number(exit.stop) >= 500);
  } finally {
    t.is((await baton.stop()).code, 0);
  }
});

test('baton exits with the last active child status (128+signal)', async (t) => {
  const baton = new Baton([...listen, '--kill-timeout', '300ms', '--', 'node', fixture, 'ignore-term']);
  await baton.event('active', 1);
  t.is((await baton.stop()).code, 137);
});

test('a generation that exits at once on SIGTERM: no connection refused, the new one serves', async (t) => {
  const baton = new Baton([...listen, '--drain', '200ms', '--', 'node', fixture, 'exit-on-term']);
  try {
    await baton.event('active', 1);
    const port = await baton.port();
    const load = hammer({ port, keepAlive: false, concurrency: 2, maxMs: 20_000 });
    await baton.upgradeTo(2);
    const exit = await baton.event('exit', 1);
    t.true(Number(exit.exit) - Number(exit.stop) < 1000);
    const r = await load.stop();
    // The listener never closes, so nothing is refused; requests in flight on the exiting child may be reset.
    t.is(r.failures.ECONNREFUSED ?? 0, 0);
    t.regex(await get(port), /generation=2/);
  } finally {
    await baton.stop();
  }
});

test('a crash of the active child restarts it with backoff; connections wait in the queue meanwhile', async (t) => {
  const baton = new Baton([...listen, '--', 'node', fixture, 'crash:400', '1']);
  try {
    await baton.event('active', 1);
    const port = await baton.port();
    const restart = await baton.event('restart');
    t.is(restart.in, 1000);
    t.is(restart.crashes, 1);
    // Sent while no generation runs: it waits in the listener's queue and is answered by generation 2.
    t.regex(await get(port), /generation=2/);
    await baton.event('active', 2);
  } finally {
    t.is((await baton.stop()).code, 0);
  }
});

test('a crash loop backs off by 1.5x', async (t) => {
  const baton = new Baton([...listen, '--', 'node', fixture, 'crash:50', '1,2,3']);
  try {
    await baton.event('active', 4, 30_000);
    const delays = baton.events.filter((e) => e.event === 'restart').map((e) => e.in);
    t.deepEqual(delays, [1000, 1500, 2250]);
  } finally {
    await baton.stop();
  }
});

test('20 SIGHUPs in one second coalesce into one follow-up upgrade; no orphan generation', async (t) => {
  const baton = new Baton([...listen, '--drain', '100ms', '--', 'node', fixture, 'slow:1500', '2,3']);
  try {
    await baton.event('active', 1);
    for (let i = 0; i < 20; i++) {
      baton.signal('SIGHUP');
      await new Promise((r) => setTimeout(r, 50));
    }
    await baton.event('active', 3, 20_000);
    await baton.event('exit', 2, 10_000);
    await new Promise((r) => setTimeout(r, 300));
    t.is(baton.events.filter((e) => e.event === 'spawn').length, 3);
    t.is(baton.events.filter((e) => e.event === 'coalesced').length, 1);
    // Never two generations starting at once.
    const starts = baton.events.filter((e) => ['spawn', 'ready', 'failed'].includes(e.event)).map((e) => e.event);
    t.deepEqual(starts, ['spawn', 'ready', 'spawn', 'ready', 'spawn', 'ready']);
    t.is(childrenOf(baton.pid).length, 1);
  } finally {
    await baton.stop();
  }
});

test('SIGTERM to baton during an upgrade stops both generations and removes the pid file', async (t) => {
  const pidFile = join(tmpdir(), `baton-fault-${process.pid}.pid`);
  const baton = new Baton([...listen, '--pid-file', pidFile, '--', 'node', fixture, 'slow:3000', '2']);
  await baton.event('active', 1);
  t.true(existsSync(pidFile));
  baton.signal('SIGHUP');
  const spawn = await baton.event('spawn', 2);
  const pids = [...childrenOf(baton.pid)];
  t.is(pids.length, 2);
  const { code } = await baton.stop();
  t.is(code, 0);
  t.false(existsSync(pidFile));
  t.false(alive(spawn.pid));
  for (const pid of pids) t.false(alive(pid), `child ${pid} left behind`);
});

test('--max-draining caps old generations still alive: the oldest is killed first', async (t) => {
  const baton = new Baton([...listen, '--drain', '20s', '--max-draining', '1', '--', 'node', fixture]);
  try {
    await baton.event('active', 1);
    await baton.upgradeTo(2);
    await baton.upgradeTo(3);
    const kill = await baton.event('kill', 1);
    t.regex(String(kill.message), /more than --max-draining 1/);
    t.is((await baton.event('exit', 1)).message, 'killed by SIGKILL');
    t.is(childrenOf(baton.pid).length, 2, 'generation 2 drains, generation 3 serves');
  } finally {
    await baton.stop();
  }
});

test('SIGINT stops baton like SIGTERM', async (t) => {
  const baton = new Baton([...listen, '--', 'node', fixture]);
  await baton.event('active', 1);
  const [child] = childrenOf(baton.pid);
  baton.signal('SIGINT');
  t.is((await baton.exited).code, 0);
  t.false(alive(child!));
});
