// planUpgrade's decisions on configurations as parseOptions makes them, without starting anything: what a
// changed --config refuses, and how each change reads in `reload --wait`.
import test from 'ava';
import { parseOptions } from '../supervisor/cli/argv.js';
import type { Config } from '../supervisor/config.js';
import { planUpgrade } from '../supervisor/reconfig.js';

const base = ['--listen', '127.0.0.1:0', '--control', '/tmp/baton-plan-test.sock'];
const parse = (...args: string[]) => parseOptions([...base, ...args])!;

async function changes(from: Config, to: Config): Promise<string[]> {
  const plan = await planUpgrade(from, async () => to);
  if ('reason' in plan) throw new Error(plan.reason);
  return plan.changes;
}

test('each changed shaping option is one line; text is quoted, durations in ms, nothing given is none', async (t) => {
  const from = parse('--drain', '5s', '--', 'node', 'a.mjs');
  const to = parse(
    ...['--drain', '2s', '--ready', 'probe:curl -f x', '--health', 'probe:true', '--health-interval', '500ms'],
    ...['--env-file=-app.env', '--', 'node', 'b.mjs'],
  );
  t.deepEqual(await changes(from, to), [
    'the command from "node a.mjs" to "node b.mjs"',
    '--env-file from none to "-app.env"',
    '--ready from "grab" to "probe:curl -f x"',
    '--drain from 5000ms to 2000ms',
    '--health from none to "probe:true every 500ms, 3 failures in a row"',
  ]);
  t.deepEqual(await changes(to, to), [], 'the same options: no line');
});

test('a changed option baton sets up at start refuses the plan, naming each; nothing else is compared', async (t) => {
  const from = parse('--', 'node', 'a.mjs');
  const plan = await planUpgrade(from, async () =>
    parse('--backlog', '64', '--handover', 'inherit', '--', 'node', 'b.mjs'),
  );
  t.like(plan, {
    reason: '--config not applied: --backlog, --handover changed, which baton sets up only at its start',
    hint: 'restart baton to change --backlog, --handover, or put back its value to upgrade',
  });
});

test('an error of the re-read refuses the plan with its message and hint', async (t) => {
  const from = parse('--', 'node', 'a.mjs');
  const plan = await planUpgrade(from, async () => parse('--drain', 'soon', '--', 'node', 'a.mjs'));
  t.like(plan, { reason: '--config not applied: bad duration for --drain: "soon"' });
  t.regex((plan as { hint: string }).hint, /^use milliseconds or a unit/);
});
