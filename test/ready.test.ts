import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { Baton, fixture } from './helpers/baton.js';
import { get } from './helpers/load.js';

async function readyAfter(t: import('ava').ExecutionContext, args: string[], mode = 'good'): Promise<number> {
  const baton = new Baton([...args, '--', 'node', fixture, mode]);
  try {
    const ready = await baton.event('ready', 1);
    await baton.event('active', 1);
    t.regex(await get(await baton.port()), /generation=1/);
    return Number(ready.ready);
  } finally {
    await baton.stop();
  }
}

test('grab (pidfd default): ready when the child holds the listener', async (t) => {
  t.true((await readyAfter(t, ['--listen', '127.0.0.1:0'], 'slow:600')) >= 600);
});

test('notify: ready when the child sends READY=1 to its private NOTIFY_SOCKET', async (t) => {
  t.true((await readyAfter(t, ['--listen', '127.0.0.1:0', '--ready', 'notify'], 'slow:600')) >= 600);
});

test('delay: ready after a fixed time', async (t) => {
  t.true((await readyAfter(t, ['--listen', '127.0.0.1:0', '--ready', 'delay:700ms'])) >= 700);
});

test('probe: ready when the probe exits 0; it gets BATON_CHILD_PID', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-probe-'));
  // The probe succeeds once the test has written a file named after the child's pid.
  const probe = `probe:test -f ${dir}/ok-$BATON_CHILD_PID-gen$BATON_GENERATION`;
  const baton = new Baton(['--listen', '127.0.0.1:0', '--ready', probe, '--', 'node', fixture]);
  try {
    const spawn = await baton.event('spawn', 1);
    await new Promise((r) => setTimeout(r, 500));
    t.falsy(baton.events.find((e) => e.event === 'ready'));
    writeFileSync(`${dir}/ok-${spawn.pid}-gen1`, '');
    const ready = await baton.event('ready', 1);
    t.true(Number(ready.ready) >= 500);
  } finally {
    await baton.stop();
  }
});

test('grab is refused with the inherit handover', async (t) => {
  const baton = new Baton([
    '--listen',
    '127.0.0.1:0',
    '--handover',
    'inherit',
    '--ready',
    'grab',
    '--',
    'node',
    fixture,
  ]);
  const { code } = await baton.exited;
  t.is(code, 2);
  t.regex(baton.stderr, /^error: --ready grab needs --handover pidfd/m);
});
