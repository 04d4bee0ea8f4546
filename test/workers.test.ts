import test from 'ava';
import { execFile } from 'node:child_process';
import { request } from '../supervisor/control/client.js';
import { promisify } from 'node:util';
import { Baton, childrenOf, cli, fixture } from './helpers/baton.js';
import { get, hammer } from './helpers/load.js';

const run = promisify(execFile);

interface Row {
  number: number;
  worker: number;
  pid: number;
  state: string;
}

/** baton's state, straight from its control socket (fast enough to sample during a wave). */
async function status(baton: Baton): Promise<{ workers: number; generations: Row[] }> {
  return ((await request(baton.control, { command: 'status' }, 5000)) as unknown as { status: { workers: number; generations: Row[] } }).status;
}

const activeBySlot = (rows: Row[]) => Object.fromEntries(rows.filter((g) => g.state === 'active').map((g) => [g.worker, g.number]));

test.serial('rolling upgrade of 3 workers under load: zero failures, never fewer than 3 ready, every slot on the new generation', async (t) => {
  const baton = new Baton(['--listen', '127.0.0.1:0', '--workers', '3', '--drain', '200ms', '--', 'node', fixture, 'slow:300', '2']);
  try {
    await baton.waitFor((e) => e.event === 'active' && e.worker === 2);
    const port = await baton.port();
    const load = hammer({ port, keepAlive: false, concurrency: 4, maxMs: 30_000 });
    const samples: number[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        samples.push((await status(baton)).generations.filter((g) => g.state === 'active').length);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    baton.signal('SIGHUP');
    await baton.waitFor((e) => e.event === 'upgraded' && e.generation === 2, 20_000);
    await baton.waitFor((e) => e.event === 'exit' && e.generation === 1 && e.worker === 2);
    sampling = false;
    await sampler;
    const r = await load.stop();
    t.is(r.failed, 0, JSON.stringify(r.failures));
    t.true(samples.length > 3, `${samples.length} samples`);
    t.true(samples.every((n) => n >= 3), `samples: ${samples.join(',')}`);
    t.deepEqual(activeBySlot((await status(baton)).generations), { 0: 2, 1: 2, 2: 2 });
    // the wave went one slot at a time: each new worker was ready before the next one started
    const order = baton.events.filter((e) => e.generation === 2 && (e.event === 'spawn' || e.event === 'active')).map((e) => `${e.event}${e.worker}`);
    t.deepEqual(order, ['spawn0', 'active0', 'spawn1', 'active1', 'spawn2', 'active2']);
    t.is(childrenOf(baton.pid).length, 3);
  } finally {
    t.is((await baton.stop()).code, 0);
  }
});

test.serial('a new worker failing mid-wave stops the wave; the old generation serves in all slots', async (t) => {
  const baton = new Baton(['--listen', '127.0.0.1:0', '--workers', '3', '--drain', '200ms', '--', 'node', fixture, 'exit-before-ready', '2', '1']);
  try {
    await baton.waitFor((e) => e.event === 'active' && e.worker === 2);
    baton.signal('SIGHUP');
    const rollback = await baton.event('rollback');
    t.is(rollback.generation, 2);
    t.truthy(baton.events.find((e) => e.event === 'regained' && e.worker === 0 && e.generation === 1));
    await baton.waitFor((e) => e.event === 'exit' && e.generation === 2 && e.worker === 0);
    t.deepEqual(activeBySlot((await status(baton)).generations), { 0: 1, 1: 1, 2: 1 });
    t.false(baton.events.some((e) => e.event === 'spawn' && e.generation === 2 && e.worker === 2), 'the wave stopped');
    t.regex(await get(await baton.port()), /generation=1/);
    t.is(childrenOf(baton.pid).length, 3);
  } finally {
    t.is((await baton.stop()).code, 0, "the exit status is the regained workers', not the failed one's");
  }
});

test.serial('a crashing worker is replaced in its slot while the others answer', async (t) => {
  const baton = new Baton(['--listen', '127.0.0.1:0', '--workers', '3', '--', 'node', fixture, 'crash:300', '1', '1']);
  try {
    await baton.waitFor((e) => e.event === 'active' && e.worker === 2);
    const port = await baton.port();
    const load = hammer({ port, keepAlive: false, concurrency: 2, maxMs: 20_000 });
    const restart = await baton.event('restart');
    t.is(restart.worker, 1);
    t.is(restart.in, 1000);
    const replaced = await baton.waitFor((e) => e.event === 'active' && e.worker === 1 && e.generation !== 1);
    await new Promise((r) => setTimeout(r, 200));
    const r = await load.stop();
    t.is(r.failures.ECONNREFUSED ?? 0, 0);
    t.true(r.ok > 20);
    t.deepEqual(activeBySlot((await status(baton)).generations), { 0: 1, 1: replaced.generation, 2: 1 });
  } finally {
    await baton.stop();
  }
});

test.serial('SIGTTIN and SIGTTOU add and remove a worker; status shows one row per worker', async (t) => {
  const baton = new Baton(['--listen', '127.0.0.1:0', '--workers', '2', '--drain', '100ms', '--', 'node', fixture]);
  try {
    await baton.waitFor((e) => e.event === 'active' && e.worker === 1);
    baton.signal('SIGTTIN');
    await baton.waitFor((e) => e.event === 'active' && e.worker === 2);
    let s = await status(baton);
    t.is(s.workers, 3);
    t.deepEqual(Object.keys(activeBySlot(s.generations)), ['0', '1', '2']);
    const text = await run(process.execPath, [cli, 'status', '--control', baton.control], { encoding: 'utf8' });
    t.is(text.stdout.split('\n').filter((l) => / active /.test(l)).length, 3);
    baton.signal('SIGTTOU');
    await baton.waitFor((e) => e.event === 'exit' && e.worker === 2);
    s = await status(baton);
    t.is(s.workers, 2);
    t.is(childrenOf(baton.pid).length, 2);
  } finally {
    await baton.stop();
  }
});

test.serial('--workers with the inherit handover', async (t) => {
  const baton = new Baton(['--listen', '127.0.0.1:0', '--workers', '2', '--handover', 'inherit', '--ready', 'notify', '--', 'node', fixture]);
  try {
    await baton.waitFor((e) => e.event === 'active' && e.worker === 1);
    t.is(childrenOf(baton.pid).length, 2, 'both workers run');
    t.regex(await get(await baton.port()), /generation=1 worker=[01] /);
    baton.signal('SIGHUP');
    await baton.waitFor((e) => e.event === 'upgraded' && e.generation === 2);
    await baton.waitFor((e) => e.event === 'exit' && e.generation === 1 && e.worker === 1);
    t.regex(await get(await baton.port()), /generation=2 worker=[01] /);
    t.deepEqual(activeBySlot((await status(baton)).generations), { 0: 2, 1: 2 });
  } finally {
    await baton.stop();
  }
});
