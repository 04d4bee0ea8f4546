// A generation's state table, reached through Generation#to on a record with no process behind it.
import test from 'ava';
import { describeExit, exitCode } from '../supervisor/exit-status.js';
import { Generation, type State } from '../supervisor/generation.js';

const STATES: State[] = ['starting', 'ready', 'active', 'draining', 'exited', 'failed'];
const LEGAL = new Set([
  'starting→ready',
  'starting→failed',
  'ready→active',
  'ready→failed',
  'active→draining',
  'active→exited',
  'draining→exited',
  'draining→active',
]);

function at(state: State, number = 7): Generation {
  const gen = Object.create(Generation.prototype) as Generation;
  Object.assign(gen, { number, state });
  return gen;
}

test('every move in the table is allowed', (t) => {
  for (const move of LEGAL) {
    const [from, to] = move.split('→') as [State, State];
    const gen = at(from);
    gen.to(to);
    t.is(gen.state, to, move);
  }
});

test('every other move throws and leaves the state as it was', (t) => {
  let illegal = 0;
  for (const from of STATES) {
    for (const to of STATES) {
      if (LEGAL.has(`${from}→${to}`)) continue;
      illegal++;
      const gen = at(from);
      t.throws(() => gen.to(to), { message: `generation 7: illegal transition ${from} → ${to}` });
      t.is(gen.state, from);
    }
  }
  t.is(illegal, 28);
});

test('active since the first activation, kept when a drain is undone', (t) => {
  const gen = at('ready');
  t.is(gen.activeSince, undefined);
  gen.to('active');
  const since = gen.activeSince;
  t.is(typeof since, 'number');
  gen.to('draining');
  gen.to('active');
  t.is(gen.activeSince, since);
});

test('an exit status is its code, or 128 plus the signal number', (t) => {
  t.is(exitCode({ code: 0, signal: null }), 0);
  t.is(exitCode({ code: 3, signal: null }), 3);
  t.is(exitCode({ code: null, signal: 'SIGTERM' }), 143);
  t.is(exitCode({ code: null, signal: 'SIGINT' }), 130);
  t.is(exitCode({ code: null, signal: null }), 137);
});

test('an exit is described by its signal, else its code', (t) => {
  t.is(describeExit({ code: 1, signal: null }), 'exited with code 1');
  t.is(describeExit({ code: null, signal: 'SIGKILL' }), 'killed by SIGKILL');
});
