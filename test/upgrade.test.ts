import test from 'ava';
import { alive, Baton, childrenOf, fixture } from './helpers/baton.js';
import { gaps, hammer, servedBy } from './helpers/load.js';
import { exclusive } from './helpers/lock.js';

for (const keepAlive of [false, true]) {
  const client = keepAlive ? 'keep-alive' : 'new connection per request';
  test.serial(`zero downtime: 5 upgrades back to back under load, no gap, ${client}`, async (t) => {
    const release = await exclusive();
    const baton = new Baton(['--listen', '127.0.0.1:0', '--drain', '300ms', '--', 'node', fixture]);
    try {
      await baton.event('active', 1);
      const port = await baton.port();
      const load = hammer({ port, keepAlive, concurrency: 4, maxMs: 60_000 });
      // Back to back, but each generation answers before the next upgrade (keep-alive clients reach
      // a new generation only once the old one closes their connections).
      for (let n = 2; n <= 6; n++) {
        await baton.upgradeTo(n);
        t.true(await load.answered(n), `generation ${n} answered no request`);
      }
      const last = baton.events.find((e) => e.event === 'spawn' && e.generation === 5)!;
      await baton.event('exit', 5); // generation 5 has drained and stopped
      t.false(alive(last.pid), 'generation 5 really exited');
      await new Promise((r) => setTimeout(r, 300));
      const r = await load.stop();
      t.deepEqual(gaps(r), []);
      t.true(r.ok > 100, `only ${r.ok} requests completed`);
      for (let n = 1; n <= 6; n++) t.true((r.generations.get(n) ?? 0) > 0, `generation ${n} answered no request`);
      t.deepEqual(await servedBy(port, 6), [], 'only generation 6 serves afterwards');
      t.is(childrenOf(baton.pid).length, 1);
    } finally {
      t.is((await baton.stop()).code, 0);
      release();
    }
  });
}

test.serial('the gap check sees a stall that fails no request: a generation stopped for 800 ms', async (t) => {
  const release = await exclusive();
  const baton = new Baton(['--listen', '127.0.0.1:0', '--', 'node', fixture]);
  try {
    const { pid } = await baton.event('active', 1);
    const load = hammer({ port: await baton.port(), keepAlive: false, concurrency: 4, maxMs: 10_000 });
    await load.answered(1);
    process.kill(pid, 'SIGSTOP');
    await new Promise((r) => setTimeout(r, 800));
    process.kill(pid, 'SIGCONT');
    await new Promise((r) => setTimeout(r, 300));
    const r = await load.stop();
    t.is(r.failed, 0, 'the accept queue hides the stall from a failure count');
    t.true(
      gaps(r).some((p) => p.startsWith('no request completed')),
      gaps(r).join('; '),
    );
  } finally {
    await baton.stop();
    release();
  }
});
