// Crash backoff per worker slot, as Slots applies it (test/slots.test.ts has backoffDelay's values and the
// first crash-loop report); the restart timers are called off after each test.
import test, { type ExecutionContext } from 'ava';
import { Generation } from '../supervisor/generation.js';
import type { Logger } from '../supervisor/log.js';
import { Slots } from '../supervisor/slots.js';

type Event = [string, Record<string, unknown>];

function slots(t: ExecutionContext, count: number, crashes?: number[]): Slots & { events: Event[] } {
  const events: Event[] = [];
  const log: Logger = { event: (name, fields = {}) => void events.push([name, fields]) };
  const s = new Slots({ count, log, onDue: () => {}, ...(crashes ? { crashes } : {}) });
  t.teardown(() => s.clearRestarts());
  return Object.assign(s, { events });
}

/** A process that served in `slot` for `ms` and then exited on its own. */
function crashAfter(s: Slots, slot: number, ms: number): void {
  const gen = Object.create(Generation.prototype) as Generation;
  Object.assign(gen, { number: 1, worker: slot, pid: 100_000, state: 'ready', times: {} });
  s.activate(gen, slot);
  gen.activeSince = performance.now() - ms;
  s.lost(gen, 'boom');
}

const waits = (events: Event[]) => events.filter(([e]) => e === 'restart').map(([, f]) => f.in);

test('each crash in a row waits 1.5 times longer, up to 30 s', (t) => {
  const s = slots(t, 1);
  for (let i = 0; i < 12; i++) s.crashed(0, 'boom');
  t.deepEqual(waits(s.events), [1000, 1500, 2250, 3375, 5063, 7594, 11391, 17086, 25629, 30000, 30000, 30000]);
  t.deepEqual(s.crashes(), [12]);
});

test('a run shorter than a minute keeps the count; a minute resets it to the first wait', (t) => {
  const s = slots(t, 1);
  for (let i = 0; i < 3; i++) s.crashed(0, 'boom');
  crashAfter(s, 0, 59_900);
  t.deepEqual(s.crashes(), [4]);
  crashAfter(s, 0, 60_000);
  t.deepEqual(s.crashes(), [1]);
  t.deepEqual(waits(s.events), [1000, 1500, 2250, 3375, 1000]);
  t.deepEqual(s.events.at(-1), ['restart', { worker: 0, message: 'boom', in: 1000, crashes: 1 }]);
});

test('each slot counts its own crashes', (t) => {
  const s = slots(t, 3);
  s.crashed(0, 'a');
  s.crashed(2, 'b');
  s.crashed(0, 'c');
  crashAfter(s, 2, 60_000);
  t.deepEqual(s.crashes(), [2, 0, 1]);
  const restarts = s.events.filter(([e]) => e === 'restart');
  t.deepEqual(
    restarts.map(([, f]) => [f.worker, f.in]),
    [
      [0, 1000],
      [2, 1000],
      [0, 1500],
      [2, 1000],
    ],
  );
});

test('crash counts carried over (self-upgrade) continue their series', (t) => {
  const s = slots(t, 2, [4]);
  t.deepEqual(s.crashes(), [4, 0]);
  s.crashed(0, 'boom');
  t.deepEqual(waits(s.events), [5063]);
  t.is(s.events[1]![0], 'crash-loop');
});

/** A process serving in `slot` (activated now). */
function serve(s: Slots, slot: number): void {
  const gen = Object.create(Generation.prototype) as Generation;
  Object.assign(gen, { number: 1, worker: slot, pid: 100_000 + slot, state: 'ready', times: {} });
  s.activate(gen, slot);
}

test('a crash loop is reported at every fifth crash in a row, no other', (t) => {
  const s = slots(t, 2);
  serve(s, 0);
  for (let i = 0; i < 11; i++) s.crashed(1, 'boom');
  const loops = s.events.filter(([e]) => e === 'crash-loop');
  t.deepEqual(
    loops.map(([, f]) => f.crashes),
    [5, 10],
  );
  t.deepEqual(loops[1], [
    'crash-loop',
    {
      worker: 1,
      message: 'worker 1 crashed 10 times in a row; 1 other worker(s) serve on',
      crashes: 10,
    },
  ]);
});

test('a slot added again starts with no crashes', (t) => {
  const s = slots(t, 2);
  s.crashed(1, 'boom');
  s.crashed(1, 'boom');
  s.resize(1);
  s.resize(2);
  t.deepEqual(s.crashes(), [0, 0]);
});

// F14: with --workers 1 the report said "the other workers serve on" while nothing served.
test('a crash loop with no other worker serving says that nothing serves', (t) => {
  const one = slots(t, 1);
  for (let i = 0; i < 5; i++) one.crashed(0, 'boom');
  t.is(one.events.at(-1)![1].message, 'worker 0 crashed 5 times in a row; nothing serves until it starts');
  const three = slots(t, 3);
  serve(three, 0);
  serve(three, 2);
  for (let i = 0; i < 5; i++) three.crashed(1, 'boom');
  t.is(three.events.at(-1)![1].message, 'worker 1 crashed 5 times in a row; 2 other worker(s) serve on');
});
