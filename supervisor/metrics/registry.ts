import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { KILL_CAUSES, STATES } from '../generation.js';
import type { Fields } from '../log.js';
import type { UpgradeResult } from '../upgrade.js';
import type { Readings } from './readings.js';

// prom-client is loaded (dynamically, by metrics/index.ts) only when --metrics is given: without it baton pays nothing.

/** How an upgrade ended, as `baton_upgrades_total{result}` says. */
const RESULTS = ['active', 'rolled_back', 'preflight_failed', 'refused'] as const;
const PHASES = ['before_ready', 'canary'] as const;
/** From a fast server's 10 ms to a slow one's 2 minutes (--ready-timeout's default is 60 s). */
const SECONDS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

const snake = (s: string) => s.replaceAll('-', '_');

export function outcome(r: UpgradeResult): (typeof RESULTS)[number] {
  if (r.ok) return 'active';
  if (r.rollback) return 'rolled_back';
  return r.refused === 'check' ? 'preflight_failed' : 'refused';
}

export interface MetricsSource {
  version: string;
  handover: string;
  /** --steer is given: its counters are exposed. */
  steering: boolean;
  /** What the gauges show, read once per scrape. */
  read(): Readings;
}

/** baton's metrics: counters and histograms fed by its events and upgrade outcomes, gauges read at each scrape. */
export class BatonMetrics {
  readonly contentType: string;
  private readonly registry = new Registry();
  private readonly upgrades: Counter<'result'>;
  private readonly upgradeSeconds: Histogram;
  private readonly readySeconds: Histogram;
  private readonly rollbacks: Counter<'phase'>;
  private readonly restarts: Counter;
  private readonly kills: Counter<'cause'>;
  private readonly backoff: Gauge;
  private readonly generations: Gauge<'state'>;
  private readonly workers: Gauge<'state'>;
  private readonly draining: Gauge;
  private readonly listenerQueue: Gauge<'listener'>;
  private readonly socketQueue: Gauge<'state'>;
  private readonly steered?: Counter<'rule'>;
  private readonly noSocket?: Counter<'rule'>;

  constructor(private readonly source: MetricsSource) {
    const registers = [this.registry];
    this.contentType = this.registry.contentType;
    const counter = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
      new Counter<L>({ name, help, labelNames, registers });
    const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
      new Gauge<L>({ name, help, labelNames, registers });
    const histogram = (name: string, help: string) => new Histogram({ name, help, buckets: SECONDS, registers });
    gauge('baton_info', 'baton version and handover mode', ['version', 'handover']).set(
      { version: source.version, handover: source.handover },
      1,
    );
    this.upgrades = counter('baton_upgrades_total', 'upgrades by how they ended', ['result']);
    this.upgradeSeconds = histogram(
      'baton_upgrade_duration_seconds',
      'from the start of an upgrade (SIGHUP, or the end of the upgrade before) until its new workers are active',
    );
    this.readySeconds = histogram('baton_ready_seconds', 'from spawn until a process is ready, each process');
    this.rollbacks = counter('baton_rollbacks_total', 'upgrades rolled back, by when', ['phase']);
    this.restarts = counter('baton_crash_restarts_total', 'crash restarts scheduled (a process exited unasked)');
    this.kills = counter('baton_kills_total', 'processes baton sent SIGKILL, by why', ['cause']);
    this.backoff = gauge('baton_backoff_seconds', 'the longest backoff of a crash restart pending now');
    this.generations = gauge('baton_generations', 'generations with a process in each state', ['state']);
    this.workers = gauge('baton_workers', 'processes of generations, by state', ['state']);
    this.draining = gauge('baton_draining_connections', 'connections still open in draining processes');
    this.listenerQueue = gauge('baton_listener_accept_queue', "connections waiting in a listener's queue", [
      'listener',
    ]);
    this.socketQueue = gauge(
      'baton_generation_accept_queue',
      "connections waiting in the queues of generations' own sockets, by the generation's state",
      ['state'],
    );
    if (source.steering) {
      this.steered = counter('baton_steered_connections_total', 'connections steered by a --steer rule', ['rule']);
      this.noSocket = counter(
        'baton_steer_no_socket_total',
        'connections a --steer rule matched while the steering slot was empty (refused)',
        ['rule'],
      );
    }
    for (const result of RESULTS) this.upgrades.inc({ result }, 0);
    for (const phase of PHASES) this.rollbacks.inc({ phase }, 0);
    for (const cause of KILL_CAUSES) this.kills.inc({ cause: snake(cause) }, 0);
    // The event loop delay is sampled once a second, not every 10 ms: baton is idle most of its life.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 1000 });
    // Gauges named like counters: `promtool check metrics` refuses them (nodejs_active_* by type stay).
    for (const name of ['handles', 'requests', 'resources'])
      this.registry.removeSingleMetric(`nodejs_active_${name}_total`);
  }

  /** One of baton's log events. */
  event(event: string, fields: Fields): void {
    if (event === 'ready' && typeof fields.ready === 'number') this.readySeconds.observe(fields.ready / 1000);
    else if (event === 'upgraded' && typeof fields.upgrade === 'number') {
      this.upgradeSeconds.observe(fields.upgrade / 1000);
    } else if (event === 'restart') this.restarts.inc();
    else if (event === 'kill' && typeof fields.cause === 'string') this.kills.inc({ cause: snake(fields.cause) });
  }

  /** How an upgrade ended. */
  upgraded(r: UpgradeResult): void {
    this.upgrades.inc({ result: outcome(r) });
    if (r.rollback) this.rollbacks.inc({ phase: snake(r.rollback) });
  }

  /** The exposition, in Prometheus' text format. */
  async text(): Promise<string> {
    const r = this.source.read();
    this.backoff.set(r.backoffMs / 1000);
    for (const state of STATES) {
      const processes = r.processes.filter((p) => p.state === state);
      this.workers.set({ state }, processes.length);
      this.generations.set({ state }, new Set(processes.map((p) => p.number)).size);
      this.socketQueue.set(
        { state },
        r.sockets.reduce((n, s) => n + (s.state === state ? s.queue : 0), 0),
      );
    }
    this.draining.set(r.processes.reduce((n, p) => n + (p.connections ?? 0), 0));
    this.listenerQueue.reset();
    for (const l of r.listeners) this.listenerQueue.set({ listener: l.name }, l.queue);
    // The BPF program's counters are the truth: the exposition shows them as they are.
    this.steered?.reset();
    this.noSocket?.reset();
    for (const rule of r.steering ?? []) {
      this.steered?.inc({ rule: rule.rule }, rule.steered);
      this.noSocket?.inc({ rule: rule.rule }, rule.nosock);
    }
    return this.registry.metrics();
  }
}
