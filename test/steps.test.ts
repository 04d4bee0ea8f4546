import test from 'ava';
import { Baton, fixture } from './helpers/baton.js';
import { needs } from './helpers/needs.js';
import { inWorld } from './helpers/steer.js';

const STEPS = [
  'plan_ms',
  'spawn_ms',
  'exec_ms',
  'record_ms',
  'activate_ms',
  'switch_ms',
  'own_ms',
  'own_cpu_ms',
] as const;

/**
 * The `upgraded` event's steps: each a number of ms to 0.01, `own_ms` their sum; with the child's own time to
 * ready (its `ready` event) they make up the whole upgrade.
 */
function checkSteps(t: import('ava').ExecutionContext, baton: Baton, generation: number) {
  const upgraded = baton.events.find((e) => e.event === 'upgraded' && e.generation === generation)!;
  const ready = baton.events.find((e) => e.event === 'ready' && e.generation === generation)!;
  for (const step of STEPS) {
    const ms = upgraded[step];
    t.true(typeof ms === 'number' && ms >= 0 && Math.abs(Math.round(ms * 100) - ms * 100) < 1e-6, `${step}=${ms}`);
  }
  const [plan, spawn, activate, own] = ['plan_ms', 'spawn_ms', 'activate_ms', 'own_ms'].map(
    (k) => upgraded[k] as number,
  );
  t.true(Math.abs(own - (plan! + spawn! + activate!)) <= 0.02, JSON.stringify(upgraded));
  // baton's main thread cannot spend more CPU in those steps than they lasted.
  const cpu = upgraded.own_cpu_ms as number;
  t.true(cpu > 0 && cpu <= own! + 0.02, `own_cpu_ms ${cpu}, own_ms ${own}`);
  const whole = upgraded.upgrade as number;
  // The child's time to ready counts from the clone baton issued at the end of its spawn step: its exec (on a
  // worker thread) is part of it, and baton's record step (the run record, the spawn line) runs beside it; neither
  // is part of own. Together they cover the upgrade; each lies within it.
  const child = ready.ready as number;
  const exec = upgraded.exec_ms as number;
  t.true(exec > 0 && exec <= child + 1, `exec ${exec} ms of the child's ${child} ms`);
  const about = `upgrade ${whole} ms; own ${own} ms, the child's ${child} ms`;
  // Unloaded they cover it to the rounding of whole and child (±1 ms); under heavy load (two `yes` beside the
  // suite) up to 6.5 ms were found uncovered in a pidfd upgrade, not yet placed: a missing step of more fails.
  t.true(own! < whole && child <= whole + 1 && whole <= own! + child + 10, about);
  return upgraded;
}

test("the upgraded event says how long each of baton's own steps took, sub-millisecond", async (t) => {
  const baton = new Baton(['--listen', '127.0.0.1:0', '--drain', '200ms', '--', 'node', fixture]);
  try {
    await baton.event('active', 1);
    await baton.upgradeTo(2);
    await baton.event('upgraded', 2);
    const upgraded = checkSteps(t, baton, 2);
    t.is(upgraded.switch_ms, 0, 'no steering slot');
    const stop = await baton.event('stop', 1);
    t.true(typeof stop.stop_ms === 'number' && stop.stop_ms >= 0, 'signalling the old generation is timed too');
  } finally {
    await baton.stop();
  }
});

needs('bpf').serial('port mode: the steering slot switch is a step of its own, part of activate', (t) =>
  inWorld(false, async (w) => {
    const baton = w.baton(['--steer', '127.0.0.1:80', '--handover', 'port', '--drain', '200ms', '--', 'node', fixture]);
    await baton.event('active', 1);
    await baton.upgradeTo(2);
    await baton.event('upgraded', 2);
    const upgraded = checkSteps(t, baton, 2);
    const [sw, activate] = [upgraded.switch_ms as number, upgraded.activate_ms as number];
    t.true(sw > 0 && sw <= activate, `switch ${sw} ms of activate ${activate} ms`);
    await baton.stop();
  }),
);
