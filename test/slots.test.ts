// Unit tests of the supervisor's bookkeeping rooms: no process is started; a generation is a plain
// record with the fields these rooms read, moved through the real state table.
import test from 'ava';
import { Generation } from '../supervisor/generation.js';
import type { Logger } from '../supervisor/log.js';
import { Retirement } from '../supervisor/retire.js';
import { backoffDelay, Slots } from '../supervisor/slots.js';
import { History, type UpgradeResult } from '../supervisor/upgrade.js';

type Event = [string, Record<string, unknown>];

function logger(): Logger & { events: Event[] } {
  const events: Event[] = [];
  return { events, event: (name, fields = {}) => void events.push([name, fields]) };
}

/** A generation that is ready, as launch() leaves it, without a process behind it. */
function ready(number: number, worker = 0): Generation {
  const gen = Object.create(Generation.prototype) as Generation;
  Object.assign(gen, { number, worker, pid: 100_000 + number * 10 + worker, state: 'ready', times: {} });
  Object.defineProperty(gen, 'alive', { get: () => gen.state !== 'exited' && gen.state !== 'failed' });
  return gen;
}

test('backoff: 1.5^(n-1) s for the n-th crash in a row, capped at 30 s', (t) => {
  t.deepEqual([1, 2, 3, 4].map(backoffDelay), [1000, 1500, 2250, 3375]);
  t.is(backoffDelay(9), 25_629);
  t.is(backoffDelay(10), 30_000);
  t.is(backoffDelay(50), 30_000);
});

test('slots: activate takes the slot, logs, and the one it replaces drains', (t) => {
  const log = logger();
  const slots = new Slots({ count: 2, log, onDue: () => {} });
  const [a, b] = [ready(1, 0), ready(2, 0)];
  t.is(slots.activate(a, 0), undefined);
  t.is(slots.activate(b, 0, { ms: 12, drain: 300 }), a);
  t.is(a.state, 'draining');
  t.is(b.state, 'active');
  t.is(slots.at(0), b);
  t.is(slots.lastActive, b);
  t.is(slots.newest, 2);
  t.deepEqual(
    log.events.map(([e, f]) => [e, f.generation]),
    [
      ['active', 1],
      ['active', 2],
      ['draining', 1],
    ],
  );
  t.is(log.events[2]![1].drain, 300);
});

test('slots: a crash schedules the restart after its backoff; a crash loop is reported every fifth time', async (t) => {
  const log = logger();
  let woken = 0;
  const slots = new Slots({ count: 1, log, onDue: () => woken++ });
  slots.crashed(0, 'boom');
  t.deepEqual(log.events[0], ['restart', { worker: 0, message: 'boom', in: 1000, crashes: 1 }]);
  t.false(slots.hasDue());
  for (let i = 0; i < 4; i++) slots.crashed(0, 'again');
  t.deepEqual(
    log.events.map(([e]) => e),
    ['restart', 'restart', 'restart', 'restart', 'restart', 'crash-loop'],
  );
  t.deepEqual(slots.crashes(), [5]);
  slots.clearRestarts();
  await new Promise((r) => setTimeout(r, 50));
  t.is(woken, 0, 'a called-off restart never falls due');
  const steady = ready(1);
  slots.activate(steady, 0);
  steady.activeSince = performance.now() - 60_000;
  slots.lost(steady, 'crashed after a minute');
  t.deepEqual(slots.crashes(), [1], 'a minute of service resets the count before this crash counts');
  t.is(slots.at(0), undefined);
  const brief = ready(2);
  slots.activate(brief, 0);
  slots.lost(brief, 'crashed at once');
  t.deepEqual(slots.crashes(), [2], 'a crash right after activation counts on');
  slots.lost(ready(3), 'never served');
  t.deepEqual(slots.crashes(), [2], 'a process that held no slot changes nothing');
  slots.clearRestarts();
});

test('slots: a due restart is reported once, only for a slot still empty and still there', (t) => {
  const slots = new Slots({ count: 1, log: logger(), onDue: () => {} });
  t.deepEqual(slots.resize(3), []);
  t.true(slots.hasDue());
  const one = ready(1, 1);
  slots.activate(one, 1);
  t.deepEqual(slots.takeDue(), [2], 'slot 1 was filled meanwhile');
  t.deepEqual(slots.takeDue(), []);
  const two = ready(2, 2);
  slots.activate(two, 2);
  t.deepEqual(
    slots.resize(1),
    [
      [2, two],
      [1, one],
    ],
    'the last slots go first, with their processes',
  );
  t.is(slots.length, 1);
  t.deepEqual(slots.resize(0).length, 0, 'never fewer than one slot');
  t.is(slots.length, 1);
});

test('retirement: --max-draining counts retirements, oldest first, whatever their process count', (t) => {
  const config = { drain: 60_000, maxDraining: 1 };
  const retirement = new Retirement(config, () => false);
  const killed: number[] = [];
  const draining = (n: number, w: number) => {
    const g = ready(n, w);
    g.state = 'draining';
    g.kill = async () => {
      killed.push(g.pid);
      return { code: null, signal: 'SIGKILL' };
    };
    return g;
  };
  const wave1 = [draining(1, 0), draining(1, 1)];
  const scaleDown = [draining(2, 2)];
  const wave2 = [draining(3, 0), draining(3, 1)];
  retirement.retire(wave1);
  retirement.retire(scaleDown);
  retirement.retire(wave2);
  retirement.cap([...wave1, ...scaleDown, ...wave2]);
  t.deepEqual(killed.sort(), [...wave1, ...scaleDown].map((g) => g.pid).sort(), 'the two oldest retirements');
  retirement.pause();
});

test('history: the last ten upgrades, oldest first', (t) => {
  const r = (generation: number): UpgradeResult => ({ ok: true, generation, requestedAt: '', ms: 1 });
  const h = new History(Array.from({ length: 12 }, (_, i) => r(i)));
  t.deepEqual(
    h.list().map((u) => u.generation),
    [2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
  );
  h.add(r(12));
  t.is(h.list().length, 10);
  t.is(h.list()[0]!.generation, 3);
});
