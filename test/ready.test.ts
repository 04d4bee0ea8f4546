import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { Baton, fixture } from './helpers/baton.js';
import { get } from './helpers/load.js';
import { allEnded, killAll, ownGroup, pidsFile, recorded, until } from './helpers/procs.js';

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

// ---- F8: a probe runs in a process group of its own, and nothing of it outlives its generation's start ----

/**
 * A probe that starts `sleep 300` in its group, writes "SHELL SLEEP" to `file` and waits; ready at once if `readyIf`.
 */
const hanging = (file: string, readyIf = 'false') =>
  `probe:${readyIf} && exit 0; sleep 300 & echo $$ $! >> ${file}; wait`;

test('a probe still running at the ready-timeout is killed with its group', async (t) => {
  const p = pidsFile(t);
  const args = ['--listen', '127.0.0.1:0', '--ready', hanging(p.file), '--ready-timeout', '3s'];
  const baton = new Baton([...args, '--', 'node', fixture]);
  try {
    p.pids.push(...(await recorded(p.file)));
    ownGroup(t, baton.pid, p.pids);
    t.is((await baton.exited).code, 1, baton.stderr);
    t.regex(baton.stderr, /not ready within 3000ms/);
    await until('the probe and its sleep gone', allEnded(p.pids), 2000);
  } finally {
    killAll(p.pids); // a failed test must not wait on them
    await baton.stop();
  }
});

test('a probe still running when its generation exits is killed with its group', async (t) => {
  const p = pidsFile(t);
  const args = ['--listen', '127.0.0.1:0', '--ready', hanging(p.file, 'test $BATON_GENERATION = 1')];
  const baton = new Baton([...args, '--', 'node', fixture, 'crash:3000', '2']);
  try {
    await baton.event('active', 1);
    baton.signal('SIGHUP');
    p.pids.push(...(await recorded(p.file)));
    ownGroup(t, baton.pid, p.pids);
    t.regex(String((await baton.event('failed', 2)).message), /^exited with code 1 before ready/);
    await until('the probe and its sleep gone', allEnded(p.pids), 2000);
  } finally {
    killAll(p.pids); // a failed test must not wait on them
    await baton.stop();
  }
});

test('a probe still running when baton stops is killed at once, not when its generation is gone', async (t) => {
  const p = pidsFile(t);
  const args = [
    '--listen',
    '127.0.0.1:0',
    '--kill-timeout',
    '5s',
    '--ready',
    hanging(p.file, 'test $BATON_GENERATION = 1'),
  ];
  // generation 2 ignores SIGTERM: it is there until the SIGKILL 5 s after the stop
  const baton = new Baton([...args, '--', 'node', fixture, 'ignore-term', '2']);
  try {
    await baton.event('active', 1);
    baton.signal('SIGHUP');
    p.pids.push(...(await recorded(p.file)));
    ownGroup(t, baton.pid, p.pids);
    await baton.event('grab', 2); // its SIGTERM handler is in place
    baton.signal('SIGTERM');
    await until('the probe and its sleep gone', allEnded(p.pids), 2000);
    t.is(baton.child.exitCode, null, 'baton still waits for generation 2');
  } finally {
    killAll(p.pids); // a failed test must not wait on them
    await baton.stop();
  }
});

test('what a probe that succeeded left running in its group is killed', async (t) => {
  const p = pidsFile(t);
  const probe = `probe:sleep 300 & echo $$ $! >> ${p.file}; exit 0`;
  const baton = new Baton(['--listen', '127.0.0.1:0', '--ready', probe, '--', 'node', fixture]);
  try {
    await baton.event('ready', 1);
    p.pids.push(...(await recorded(p.file)));
    t.true(await until('the sleep the probe left gone', allEnded(p.pids), 2000));
  } finally {
    killAll(p.pids); // a failed test must not wait on them
    await baton.stop();
  }
});
