import test from 'ava';
import { Baton, childrenOf, fixture } from './helpers/baton.js';
import { hammer } from './helpers/load.js';

for (const keepAlive of [false, true]) {
  test.serial(`zero downtime: 5 upgrades back to back under load, ${keepAlive ? 'keep-alive' : 'new connection per request'}`, async (t) => {
    const baton = new Baton(['--listen', '127.0.0.1:0', '--drain', '300ms', '--', 'node', fixture]);
    try {
      await baton.event('active', 1);
      const port = await baton.port();
      const load = hammer({ port, keepAlive, concurrency: 4, maxMs: 60_000 });
      // Back to back, but each generation answers before the next upgrade (keep-alive clients reach
      // a new generation only once the old one closes their connections).
      for (let n = 2; n <= 6; n++) {
        await baton.upgradeTo(n);
        await load.answered(n);
      }
      await baton.event('exit', 5); // generation 5 has drained and stopped
      await new Promise((r) => setTimeout(r, 300));
      const r = await load.stop();
      t.is(r.failed, 0, `failures: ${JSON.stringify(r.failures)}`);
      t.true(r.ok > 100, `only ${r.ok} requests completed`);
      for (let n = 1; n <= 6; n++) t.true((r.generations.get(n) ?? 0) > 0, `generation ${n} answered no request`);
      const active = [...baton.states()].filter(([, s]) => s === 'active').map(([n]) => n);
      t.deepEqual(active, [6]);
      t.is(childrenOf(baton.pid).length, 1);
    } finally {
      t.is((await baton.stop()).code, 0);
    }
  });
}
