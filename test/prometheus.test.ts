import { join } from 'node:path';
import { Baton, ctl, fixture, root } from './helpers/baton.js';
import { metricsPort } from './helpers/metrics.js';
import { needs } from './helpers/needs.js';
import { Prometheus } from './helpers/prometheus.js';

const title =
  'a real Prometheus scrapes baton: a good upgrade and a rolled-back one move the counters and fire the alert';

needs('prometheus')(title, async (t) => {
  // Generation 3 exits before it is ready: the second upgrade is rolled back.
  const args = ['--listen', '127.0.0.1:0', '--metrics', '127.0.0.1:0', '--drain', '1s'];
  const baton = new Baton([...args, '--', 'node', fixture, 'exit-before-ready', '3']);
  let prometheus: Prometheus | undefined;
  try {
    await baton.event('active', 1);
    const target = `127.0.0.1:${await metricsPort(baton)}`;
    prometheus = new Prometheus([target], [join(root, 'examples/monitoring/alerts.yml')]);
    t.is(await prometheus.until('up{job="baton"}', 1), 1, 'Prometheus scrapes baton');
    t.is(await prometheus.value('baton_upgrades_total{result="active"}'), 0);
    t.is((await ctl(baton, 'reload', '--wait')).code, 0);
    t.is((await ctl(baton, 'reload', '--wait')).code, 1);
    const expect = async (query: string, want: number) => t.is(await prometheus!.until(query, want), want, query);
    await expect('baton_upgrades_total{result="active"}', 1);
    await expect('baton_upgrades_total{result="rolled_back"}', 1);
    await expect('baton_upgrades_total{result="preflight_failed"}', 0);
    await expect('baton_rollbacks_total{phase="before_ready"}', 1);
    await expect('baton_rollbacks_total{phase="canary"}', 0);
    // One upgrade reached active; generations 1 and 2 became ready, 3 never did.
    await expect('baton_upgrade_duration_seconds_count', 1);
    await expect('baton_ready_seconds_count', 2);
    await expect('baton_ready_seconds_bucket{le="+Inf"}', 2);
    await expect('baton_workers{state="active"}', 1);
    await expect('baton_kills_total{cause="kill_timeout"}', 0);
    const ms = baton.events.find((e) => e.event === 'upgraded' && e.generation === 2)!.upgrade as number;
    await expect('baton_upgrade_duration_seconds_sum', ms / 1000);
    await expect('count(ALERTS{alertname="BatonUpgradeRolledBack",alertstate="firing",phase="before_ready"})', 1);
  } finally {
    await prometheus?.stop();
    await baton.stop();
  }
});
