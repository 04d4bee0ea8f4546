import test from 'ava';
import { alive, childrenOf, fixture } from './helpers/baton.js';
import { SteerWorld } from './helpers/steer.js';

const ports = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `127.0.0.1:${from + i}`);

test.serial('one listener serves 3 ports, a 100-port range and IPv6; other addresses are refused', async (t) => {
  const w = new SteerWorld();
  try {
    const baton = w.baton(['--steer', '127.0.0.1:7,77,777', '--steer', '127.0.0.1:8000-8099', '--steer', '[::1]:7', '--steer', 'tcp:127.0.0.0/8:9', '--listen', '[::]:7777', '--', 'node', 'examples/tcp-echo.mjs']);
    await baton.event('active', 1);
    const r = await w.echo(['127.0.0.1:7', '127.0.0.1:77', '127.0.0.1:777', ...ports(8000, 8099), '[::1]:7', '127.0.0.3:9', '127.0.0.2:7', '127.0.0.1:8100', '[::1]:77']);
    const ok = Object.entries(r).filter(([, v]) => v === 'ok').map(([k]) => k);
    t.is(ok.length, 105, JSON.stringify(r));
    t.is(r['127.0.0.2:7'], 'ECONNREFUSED');
    t.is(r['127.0.0.1:8100'], 'ECONNREFUSED');
    t.is(r['[::1]:77'], 'ECONNREFUSED');
    t.true(w.pinned());
    await baton.stop();
    const last = baton.events.find((e) => e.event === 'steering-stop')!;
    t.regex(String(last.rules), /127\.0\.0\.1:7,77,777 steered=3 nosock=0; 127\.0\.0\.1:8000-8099 steered=100 nosock=0; \[::1\]:7 steered=1 nosock=0; tcp:127\.0\.0\.0\/8:9 steered=1 nosock=0/);
    t.false(w.pinned(), 'a clean stop leaves no pins');
  } finally {
    await w.close();
  }
});

async function zeroDowntime(t: import('ava').ExecutionContext, args: string[], mode: string, keepAlive: boolean) {
  const w = new SteerWorld();
  try {
    const baton = w.baton([...args, '--drain', '300ms', '--', 'node', fixture, mode]);
    await baton.event('active', 1);
    const load = await w.hammer(80, keepAlive);
    for (let n = 2; n <= 6; n++) await baton.upgradeTo(n);
    await baton.event('exit', 5);
    const r = await load.stop();
    t.is(r.failed, 0, JSON.stringify(r.failures));
    t.true(r.ok > 100, `${r.ok} requests`);
    t.true(Number((r.generations as unknown as Record<string, number>)['6'] ?? 0) > 0, 'generation 6 answered');
    t.is((await baton.stop()).code, 0);
  } finally {
    await w.close();
  }
}

test.serial('zero downtime: --steer with the pidfd handover, 5 upgrades', async (t) => {
  await zeroDowntime(t, ['--steer', '127.0.0.1:80', '--listen', '127.0.0.1:0'], 'good', false);
});

test.serial('zero downtime: --steer with 2 workers, rolling upgrades', async (t) => {
  await zeroDowntime(t, ['--steer', '127.0.0.1:80', '--listen', '127.0.0.1:0', '--workers', '2'], 'good', false);
});

test.serial('zero downtime: --handover port, 5 upgrades', async (t) => {
  await zeroDowntime(t, ['--steer', '127.0.0.1:80', '--handover', 'port'], 'good', false);
});

test.serial('zero downtime: --handover port with a server that exits at once on SIGTERM', async (t) => {
  await zeroDowntime(t, ['--steer', '127.0.0.1:80', '--handover', 'port'], 'exit-on-term', false);
});

test.serial('SIGKILL of baton in port mode: steering goes on; a restarted baton takes over and retires the orphan', async (t) => {
  const w = new SteerWorld();
  try {
    const args = ['--steer', '127.0.0.1:80', '--handover', 'port', '--drain', '200ms', '--', 'node', fixture, 'exit-on-term'];
    const first = w.baton(args);
    const active = await first.event('active', 1);
    const load = await w.hammer(80);
    await new Promise((r) => setTimeout(r, 300));
    first.signal('SIGKILL');
    await first.exited;
    await new Promise((r) => setTimeout(r, 700)); // baton is down; the pinned link still steers
    t.true(alive(active.pid), 'the generation survives baton');
    const second = w.baton(args);
    const orphan = await second.event('orphan');
    t.is(orphan.pid, active.pid);
    await second.event('active', 2);
    await second.waitFor((e) => e.event === 'exit' && e.pid === active.pid, 10_000);
    const r = await load.stop();
    t.is(r.failed, 0, JSON.stringify(r.failures));
    t.false(alive(active.pid), 'the orphan is retired');
    t.is(childrenOf(second.pid).length, 1);
    await second.stop();
    t.false(w.pinned());
  } finally {
    await w.close();
  }
});

test.serial('port mode: an old generation that exits during its drain is fine', async (t) => {
  const w = new SteerWorld();
  try {
    const baton = w.baton(['--steer', '127.0.0.1:80', '--handover', 'port', '--drain', '2s', '--', 'node', fixture, 'crash:800', '1']);
    await baton.event('active', 1);
    await baton.upgradeTo(2);
    const exit = await baton.event('exit', 1);
    t.is(exit.code, 1, 'it crashed during the drain');
    await new Promise((r) => setTimeout(r, 1800)); // past the drain window
    t.is(baton.child.exitCode, null, 'baton is still running');
    const load = await w.hammer(80);
    await new Promise((r) => setTimeout(r, 200));
    const r = await load.stop();
    t.is(r.failed, 0);
    t.true(r.ok > 0);
    t.is((await baton.stop()).code, 0);
  } finally {
    await w.close();
  }
});

test.serial('a failed takeover leaves the orphan serving, with its pins and state', async (t) => {
  const w = new SteerWorld();
  let orphan = 0;
  try {
    const first = w.baton(['--steer', '127.0.0.1:80', '--handover', 'port', '--', 'node', fixture]);
    orphan = (await first.event('active', 1)).pid;
    first.signal('SIGKILL');
    await first.exited;
    // The restarted baton's generation 2 never becomes ready.
    const second = w.baton(['--steer', '127.0.0.1:80', '--handover', 'port', '--', 'node', fixture, 'exit-before-ready', '2']);
    t.is((await second.exited).code, 1);
    t.regex(second.stderr, /^error: generation 2 failed/m);
    t.truthy(second.events.find((e) => e.event === 'steering-kept'));
    t.true(w.pinned(), 'the pins stay');
    t.true(alive(orphan), 'the orphan serves on');
    const load = await w.hammer(80);
    await new Promise((r) => setTimeout(r, 300));
    const r = await load.stop();
    t.is(r.failed, 0, JSON.stringify(r.failures));
    t.true(r.ok > 0);
  } finally {
    if (orphan) process.kill(-orphan, 'SIGKILL');
    await w.close();
  }
});
