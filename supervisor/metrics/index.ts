import { type Address, formatAddress } from '../address.js';
import { BatonError } from '../errors.js';
import type { Hooks } from '../hooks.js';
import type { Tap } from '../log.js';
import { type Rule, steersTo } from '../steering/rules.js';
import type { BatonMetrics, MetricsSource } from './registry.js';
import type { MetricsServer } from './server.js';

// prom-client and node:http are imported from here on demand: only with --metrics (and by a self-upgrade's check).

/** baton's metrics, fed from now on by its events (`tap`) and by the upgrade outcomes the hooks hear. */
export async function meter(source: MetricsSource, tap: Tap): Promise<{ metrics: BatonMetrics; hooks: Hooks }> {
  const { BatonMetrics } = await import('./registry.js');
  const metrics = new BatonMetrics(source);
  tap.listen((event, fields) => metrics.event(event, fields));
  return { metrics, hooks: { upgraded: (r) => metrics.upgraded(r) } };
}

/**
 * Serves `metrics` at `address`: on the socket a self-upgrade handed over (`handed`) if it is bound there. Refused
 * where a --steer rule would take the scrapes (a port 0 is known only now).
 */
export async function serveMetrics(
  address: Address,
  metrics: BatonMetrics,
  log: Tap,
  o: { rules: Rule[]; handed?: number | undefined },
): Promise<MetricsServer> {
  const { MetricsServer } = await import('./server.js');
  const adopted = o.handed === undefined ? undefined : await MetricsServer.adopt(o.handed, address, metrics, log);
  const server = adopted ?? (await MetricsServer.open(address, metrics, log));
  const rule = steersTo(o.rules, server.address);
  if (rule) {
    server.close();
    const where = formatAddress(server.address);
    const hint = 'give --metrics a port no --steer rule covers, e.g. --metrics 127.0.0.1:9464';
    throw new BatonError('ERR_BATON_METRICS', `--metrics bound ${where}, which --steer ${rule.text} takes`, hint);
  }
  log.event('metrics', { message: 'serving GET /metrics', address: formatAddress(server.address) });
  return server;
}
