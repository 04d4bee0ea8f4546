import test from 'ava';
import type { Readings } from '../supervisor/metrics/readings.js';
import { BatonMetrics } from '../supervisor/metrics/registry.js';
import type { UpgradeResult } from '../supervisor/upgrade.js';
import { sample } from './helpers/metrics.js';

const idle: Readings = { processes: [], backoffMs: 0, listeners: [], sockets: [] };
const result = (r: Partial<UpgradeResult>): UpgradeResult => ({
  ...{ ok: false, generation: 2, requestedAt: new Date().toISOString(), ms: 10 },
  ...r,
});

test('each way an upgrade ends is counted under its result, a rollback under its phase', async (t) => {
  const m = new BatonMetrics({ version: '0', handover: 'pidfd', steering: false, read: () => idle });
  m.upgraded(result({ ok: true }));
  m.upgraded(result({ rollback: 'before-ready', reason: 'exited with code 3 before ready' }));
  m.upgraded(result({ rollback: 'canary', reason: 'exited 2 s after it became active' }));
  m.upgraded(result({ generation: 0, refused: 'check', reason: 'preflight failed (exit 1)' }));
  m.upgraded(result({ generation: 0, refused: 'plan', reason: '--cwd leads to no directory' }));
  const text = await m.text();
  for (const [label, n] of [
    ['result="active"', 1],
    ['result="rolled_back"', 2],
    ['result="preflight_failed"', 1],
    ['result="refused"', 1],
  ] as const) {
    t.is(sample(text, 'baton_upgrades_total', label), n, label);
  }
  t.is(sample(text, 'baton_rollbacks_total', 'phase="before_ready"'), 1);
  t.is(sample(text, 'baton_rollbacks_total', 'phase="canary"'), 1);
});

test('kills by cause, restarts and times from the log events; gauges from the readings', async (t) => {
  const readings: Readings = {
    processes: [
      { number: 3, pid: 30, state: 'active' },
      { number: 3, pid: 31, state: 'active' },
      { number: 2, pid: 20, state: 'draining', connections: 4 },
      { number: 2, pid: 21, state: 'draining', connections: 1 },
    ],
    backoffMs: 2250,
    listeners: [{ name: 'web', queue: 7 }],
    sockets: [{ state: 'draining', queue: 2 }],
    steering: [{ rule: '127.0.0.1:80', steered: 12, nosock: 3 }],
  };
  const m = new BatonMetrics({ version: '0', handover: 'inherit', steering: true, read: () => readings });
  m.event('kill', { generation: 2, pid: 20, message: 'did not exit within 30000ms of SIGTERM', cause: 'kill-timeout' });
  m.event('kill', { generation: 2, message: 'leftover processes of the group' }); // not a process baton killed
  m.event('restart', { worker: 0, in: 1000, crashes: 1 });
  m.event('ready', { generation: 3, pid: 30, ready: 120 });
  m.event('upgraded', { generation: 3, workers: 2, upgrade: 250 });
  const text = await m.text();
  t.is(sample(text, 'baton_kills_total', 'cause="kill_timeout"'), 1);
  t.is(sample(text, 'baton_kills_total', 'cause="max_draining"'), 0);
  t.is(sample(text, 'baton_crash_restarts_total'), 1);
  t.is(sample(text, 'baton_ready_seconds_sum'), 0.12);
  t.is(sample(text, 'baton_upgrade_duration_seconds_bucket', 'le="0.25"'), 1);
  t.is(sample(text, 'baton_upgrade_duration_seconds_bucket', 'le="0.1"'), 0);
  t.is(sample(text, 'baton_backoff_seconds'), 2.25);
  t.is(sample(text, 'baton_workers', 'state="active"'), 2);
  t.is(sample(text, 'baton_generations', 'state="active"'), 1);
  t.is(sample(text, 'baton_generations', 'state="draining"'), 1);
  t.is(sample(text, 'baton_draining_connections'), 5);
  t.is(sample(text, 'baton_listener_accept_queue', 'listener="web"'), 7);
  t.is(sample(text, 'baton_generation_accept_queue', 'state="draining"'), 2);
  t.is(sample(text, 'baton_steered_connections_total', 'rule="127.0.0.1:80"'), 12);
  t.is(sample(text, 'baton_steer_no_socket_total', 'rule="127.0.0.1:80"'), 3);
});
