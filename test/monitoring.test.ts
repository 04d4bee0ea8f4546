import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { root } from './helpers/baton.js';
import { promtool } from './helpers/metrics.js';
import { needs } from './helpers/needs.js';

const dir = join(root, 'examples/monitoring');
const read = (file: string) => readFileSync(join(dir, file), 'utf8');
const docs = readFileSync(join(root, 'docs/metrics.md'), 'utf8');
/** The metrics docs/metrics.md lists in its table. */
const documented = new Set([...docs.matchAll(/^\| `(baton_[a-z_]+)`/gm)].map((m) => m[1]!));

needs('prometheus')('examples/monitoring: promtool checks the config and rules, and their unit tests pass', (t) => {
  for (const args of [
    ['check', 'config'],
    ['check', 'rules'],
    ['test', 'rules'],
  ]) {
    const file = { config: 'prometheus.yml', rules: args[0] === 'test' ? 'alerts.test.yml' : 'alerts.yml' }[args[1]!]!;
    const r = promtool([...args, join(dir, file)]);
    t.is(r.code, 0, `promtool ${args.join(' ')} ${file}:\n${r.output}`);
  }
});

test('the dashboard and the alert rules use only metrics baton exposes', (t) => {
  const dashboard = JSON.parse(read('grafana-dashboard.json')) as {
    panels: Array<{ targets: Array<{ expr: string }> }>;
  };
  const exprs = [...dashboard.panels.flatMap((p) => p.targets.map((x) => x.expr)), read('alerts.yml')];
  const used = new Set(exprs.flatMap((e) => [...e.matchAll(/\b(baton_[a-z_]+|process_[a-z_]+)/g)].map((m) => m[1]!)));
  t.true(used.size > 10);
  for (const name of used) {
    const metric = name.replace(/_(bucket|count|sum)$/, '');
    if (name.startsWith('process_')) t.true(docs.includes(`\`${name}\``), `${name} is among the process metrics`);
    else t.true(documented.has(metric), `${name}: docs/metrics.md lists ${metric}`);
  }
});
