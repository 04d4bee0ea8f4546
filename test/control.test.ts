import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { request } from '../supervisor/control/client.js';
import { alive, Baton, cli, ctl, fixture } from './helpers/baton.js';
import { servedBy } from './helpers/load.js';
import { needs } from './helpers/needs.js';
import { allEnded, killAll, ownGroup, pidsFile, recorded, until } from './helpers/procs.js';

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const run = promisify(execFile);

/** A command to its end without blocking this worker: the file's other tests run meanwhile. */
async function exec(file: string, args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  try {
    const r = await run(file, args, { encoding: 'utf8' });
    return { status: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { status: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

function raw(path: string, line: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const s = net.connect(path, () => s.write(line));
    let data = '';
    s.on('data', (d) => (data += d))
      .on('end', () => resolve(JSON.parse(data) as Record<string, unknown>))
      .on('error', reject);
  });
}

test(
  'reload --wait waits longer than the control socket lets an ' + 'idle client be (30 s): the window is 32 s',
  async (t) => {
    const baton = new Baton(['--listen', '127.0.0.1:0', '--drain', '32s', '--', 'node', fixture]);
    try {
      await baton.event('active', 1);
      const began = performance.now();
      const r = await ctl(baton, 'reload', '--wait');
      t.is(r.code, 0, r.stderr);
      t.regex(r.stdout, /^generation 2 is active/m);
      t.true(performance.now() - began >= 32_000, 'answered at the end of the window');
    } finally {
      await baton.stop();
    }
  },
);

test('reload --wait returns 0 once the new generation is active; status shows it', async (t) => {
  const baton = new Baton(['--listen', '127.0.0.1:0', '--drain', '3s', '--', 'node', fixture]);
  try {
    const first = await baton.event('active', 1);
    const port = await baton.port();
    // One idle keep-alive connection to generation 1: status must count it while 1 drains.
    const idle = net.connect(port, '127.0.0.1');
    await new Promise((r) => idle.once('connect', r));
    idle.on('error', () => {});
    const r = await ctl(baton, 'reload', '--wait');
    t.is(r.code, 0, r.stderr);
    t.regex(r.stdout, /^generation 2 is active \(upgrade took \d+ms\)$/m);
    const status = ((await request(baton.control, { command: 'status' }, 5000)) as unknown as { status: unknown })
      .status as {
      pid: number;
      generations: Array<{ number: number; pid: number; state: string; connections?: number }>;
      upgrades: Array<{ ok: boolean; generation: number }>;
      listeners: unknown[];
    };
    t.is(status.pid, baton.pid);
    t.deepEqual(
      status.generations.map((g) => [g.number, g.state]),
      [
        [1, 'draining'],
        [2, 'active'],
      ],
    );
    t.is(status.generations[0]!.pid, first.pid);
    t.is(status.generations[0]!.connections, 1, 'the idle connection held open to generation 1');
    t.deepEqual(
      status.upgrades.map((u) => [u.ok, u.generation]),
      [[true, 2]],
    );
    t.is(status.listeners.length, 1);
    idle.destroy();
    const text = await ctl(baton, 'status');
    t.regex(text.stdout, /^ {2}2 {4}0 {6}\d+ +active /m);
    t.regex(text.stdout, /Z ok +gen 2 in \d+ms/);
    await baton.event('exit', 1);
    t.false(alive(first.pid), 'generation 1 really exited after its drain');
    t.deepEqual(await servedBy(port, 2), []);
  } finally {
    await baton.stop();
  }
});

test('reload --wait returns 1 with the reason when the upgrade is rolled back', async (t) => {
  const baton = new Baton(['--listen', '127.0.0.1:0', '--', 'node', fixture, 'exit-before-ready', '2']);
  try {
    await baton.event('active', 1);
    const r = await ctl(baton, 'reload', '--wait');
    t.is(r.code, 1);
    t.regex(r.stderr, /^error: upgrade to generation 2 failed: exited with code 3 before ready$/m);
    t.regex(r.stderr, /^hint: generation 1 still serves/m);
  } finally {
    await baton.stop();
  }
});

test('--check: a failing preflight aborts the upgrade with its output; the active generation serves on', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-check-'));
  const check = `test -f ${dir}/ok || { echo "config test failed: line 3"; exit 4; }`;
  const baton = new Baton(['--listen', '127.0.0.1:0', '--check', check, '--', 'node', fixture]);
  try {
    await baton.event('active', 1);
    const r = await ctl(baton, 'reload', '--wait');
    t.is(r.code, 1);
    t.regex(r.stderr, /^error: upgrade failed: preflight failed \(exit 4\): config test failed: line 3$/m);
    t.is(baton.events.filter((e) => e.event === 'spawn').length, 1, 'nothing was started');
    writeFileSync(`${dir}/ok`, '');
    t.is((await ctl(baton, 'reload', '--wait')).code, 0);
  } finally {
    await baton.stop();
  }
});

test('reload without --wait only asks; stop stops', async (t) => {
  const baton = new Baton(['--listen', '127.0.0.1:0', '--', 'node', fixture]);
  try {
    await baton.event('active', 1);
    t.is((await ctl(baton, 'reload')).stdout.trim(), 'reload requested');
    await baton.event('active', 2);
    t.is((await ctl(baton, 'stop')).stdout.trim(), 'baton is stopping');
    t.is((await baton.exited).code, 0);
    t.false(existsSync(baton.control), 'the control socket is removed');
  } finally {
    await baton.stop();
  }
});

needs('setpriv')('the control socket is 0600 and refuses another uid (logged)', async (t) => {
  const baton = new Baton(['--listen', '127.0.0.1:0', '--', 'node', fixture]);
  try {
    await baton.event('active', 1);
    const { statSync, chmodSync } = await import('node:fs');
    t.is(statSync(baton.control).mode & 0o777, 0o600);
    // Let nobody reach the socket file, to see the SO_PEERCRED check (not the file mode) refuse it.
    chmodSync(baton.control, 0o666);
    const { dirname } = await import('node:path');
    chmodSync(dirname(baton.control), 0o755);
    const asNobody = ['--reuid=65534', '--regid=65534', '--clear-groups'];
    const r = await exec('setpriv', [...asNobody, process.execPath, cli, 'status', '--control', baton.control]);
    t.is(r.status, 1);
    t.regex(r.stderr, /^error: uid 65534 may not control this baton$/m);
    await baton.waitFor((e) => e.event === 'control-refused');
  } finally {
    await baton.stop();
  }
});

test('a malformed request gets an error reply; the daemon is unaffected', async (t) => {
  const baton = new Baton(['--listen', '127.0.0.1:0', '--', 'node', fixture]);
  try {
    await baton.event('active', 1);
    t.deepEqual(await raw(baton.control, 'not json\n'), {
      ok: false,
      error: { code: 'ERR_BATON_REQUEST', message: 'the request is not JSON', hint: 'see docs/control.md' },
    });
    t.like(await raw(baton.control, '{"command":"explode"}\n'), { ok: false, error: { code: 'ERR_BATON_REQUEST' } });
    // Past Node's timer limit the wait would end after 1 ms.
    const tooLong = await raw(baton.control, '{"command":"reload","wait":true,"timeout":3000000000}\n');
    const message = '"timeout" must be a positive number of ms, at most 2147483647';
    t.deepEqual(tooLong, { ok: false, error: { code: 'ERR_BATON_REQUEST', message, hint: 'see docs/control.md' } });
    t.like(await raw(baton.control, '{"command":"status"}\n'), { ok: true });
  } finally {
    await baton.stop();
  }
});

test(
  'a second baton on the same control socket is refused with ' + 'the pid of the first; a stale one is replaced',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-second-'));
    const control = join(dir, 'c.sock');
    const first = new Baton(['--control', control, '--listen', '127.0.0.1:0', '--', 'node', fixture]);
    let orphan = 0;
    let third: Baton | undefined;
    try {
      orphan = (await first.event('active', 1)).pid;
      const second = await exec(process.execPath, [
        cli,
        '--control',
        control,
        '--listen',
        '127.0.0.1:0',
        '--',
        'node',
        fixture,
      ]);
      t.is(second.status, 1);
      t.regex(
        second.stderr,
        new RegExp(`^error: control socket ${control} belongs to a running baton \\(pid ${first.pid}\\)$`, 'm'),
      );
      first.signal('SIGKILL');
      await first.exited;
      t.true(existsSync(control), 'SIGKILL left the socket file');
      third = new Baton(['--control', control, '--listen', '127.0.0.1:0', '--', 'node', fixture]);
      await third.event('active', 1);
      t.regex(String(third.events.find((e) => e.event === 'stale-control')?.message), /removed stale control socket/);
    } finally {
      await first.stop();
      // The first baton's generation 1 outlives its SIGKILL: its own process group, by pid.
      if (orphan && alive(orphan)) process.kill(-orphan, 'SIGKILL');
      await third?.stop();
    }
  },
);

test('control commands with no running baton: a clear error', async (t) => {
  const r = await ctl(join(tmpdir(), 'baton-none.sock'), 'status');
  t.is(r.code, 1);
  t.regex(r.stderr, /^error: no baton is running at \S+baton-none\.sock$/m);
  t.regex(r.stderr, /^hint: start baton, or check --control/m);
});

test('the control socket is found beside --pid-file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-pf-'));
  const baton = new Baton(['--pid-file', join(dir, 'app.pid'), '--listen', '127.0.0.1:0', '--', 'node', fixture]);
  try {
    await baton.event('active', 1);
    t.true(existsSync(join(dir, 'app.sock')));
    const r = await run(process.execPath, [cli, 'status', '--pid-file', join(dir, 'app.pid')], { encoding: 'utf8' });
    t.regex(r.stdout, new RegExp(`^baton pid ${baton.pid} `));
  } finally {
    await baton.stop();
  }
});

test('options from BATON_* and --config; flags win over the environment, the environment over the file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-config-'));
  const file = {
    listen: ['127.0.0.1:0'],
    drain: '9s',
    'stop-signal': 'SIGQUIT',
    readyTimeout: '10s',
    ready: 'notify',
    command: ['node', fixture, 'never-ready', '2'],
  };
  writeFileSync(join(dir, 'baton.json'), JSON.stringify(file));
  const baton = new Baton(['--config', join(dir, 'baton.json'), '--stop-signal', 'SIGINT'], { BATON_DRAIN: '1234ms' });
  try {
    const config = await baton.event('config');
    t.is(config.drain, 1234, 'the environment over the file');
    t.is(config.stop_signal, 'SIGINT', 'the flag over the file (neither is the default)');
    t.is(config.ready, 'notify', 'the file over the default');
    await baton.event('active', 1);
    // The file's command and ready timeout: generation 2 never says READY=1 and is given up after 10 s (long
    // enough for generation 1 to be ready on a loaded machine).
    baton.signal('SIGHUP');
    t.regex(String((await baton.event('rollback')).message), /not ready within 10000ms/);
  } finally {
    await baton.stop();
  }
  writeFileSync(join(dir, 'bad.json'), JSON.stringify({ listen: ['127.0.0.1:0'], drian: '1s' }));
  const bad = await exec(process.execPath, [cli, '--config', join(dir, 'bad.json'), '--', 'true']);
  t.is(bad.status, 2);
  t.regex(bad.stderr, /^error: unknown option in \S+bad\.json: drian$/m);
});

test('reload --wait --timeout gives up after that long with exit 1; the upgrade goes on', async (t) => {
  const baton = new Baton(['--listen', '127.0.0.1:0', '--drain', '100ms', '--', 'node', fixture, 'slow:6000', '2']);
  try {
    await baton.event('active', 1);
    const began = performance.now();
    const r = await ctl(baton, 'reload', '--wait', '--timeout', '400ms');
    t.true(performance.now() - began >= 400);
    t.false(
      baton.events.some((e) => e.event === 'ready' && e.generation === 2),
      'it returned before generation 2 was ready',
    );
    t.is(r.code, 1);
    t.regex(r.stderr, /^error: the upgrade did not finish within 400ms$/m);
    t.regex(r.stderr, /^hint: it goes on; see baton status$/m);
    await baton.event('active', 2, 20_000);
  } finally {
    await baton.stop();
  }
});

test('reload --wait during an upgrade is coalesced and answered by the follow-up upgrade', async (t) => {
  // A generation is ready only once the test has created its file: the requests below are surely
  // made while generation 2 starts, however slow the machine.
  const dir = mkdtempSync(join(tmpdir(), 'baton-coalesce-'));
  const ready = (n: number) => writeFileSync(join(dir, `gen${n}`), '');
  const probe = `probe:test -f ${dir}/gen$BATON_GENERATION`;
  const baton = new Baton(['--listen', '127.0.0.1:0', '--drain', '100ms', '--ready', probe, '--', 'node', fixture]);
  const reload = async () => {
    const reply = await request(baton.control, { command: 'reload', wait: true }, 60_000);
    return (reply as unknown as { result: { generation: number } }).result.generation;
  };
  try {
    ready(1);
    await baton.event('active', 1);
    const first = reload();
    await baton.event('spawn', 2);
    const later = [reload(), reload()];
    const asked = () => baton.events.filter((e) => e.event === 'reload').length;
    const deadline = Date.now() + 20_000;
    while (asked() < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    t.is(asked(), 3, 'baton heard all three requests while generation 2 was starting');
    ready(2);
    t.is(await first, 2);
    await baton.event('spawn', 3);
    ready(3);
    const [second, third] = await Promise.all(later);
    t.is(second, 3, 'answered by the follow-up, not by the upgrade in flight');
    t.is(third, 3, 'both requests made during the upgrade share one follow-up');
    t.is(baton.events.filter((e) => e.event === 'spawn').length, 3);
    t.is(baton.events.filter((e) => e.event === 'coalesced').length, 1);
  } finally {
    await baton.stop();
  }
});

// ---- F7: --check runs in a process group of its own, bounded by --check-timeout, killed on stop, shown by status ----

/** A check that starts `sleep 300` in its group, writes "SHELL SLEEP" to `file` and waits for it. */
const hangingCheck = (file: string) => `echo checking; sleep 300 & echo $$ $! >> ${file}; wait`;

test('--check-timeout: a hung check is killed with its group and fails the upgrade, saying so', async (t) => {
  const c = pidsFile(t);
  const args = ['--listen', '127.0.0.1:0', '--check', hangingCheck(c.file), '--check-timeout', '3s'];
  const baton = new Baton([...args, '--', 'node', fixture]);
  try {
    await baton.event('active', 1);
    const reload = ctl(baton, 'reload', '--wait');
    c.pids.push(...(await recorded(c.file)));
    ownGroup(t, baton.pid, c.pids);
    const r = await reload;
    t.is(r.code, 1);
    const why = 'timed out after 3000ms (--check-timeout); its process group was killed';
    t.regex(r.stderr, new RegExp(`^error: upgrade failed: preflight failed \\(${esc(why)}\\): checking$`, 'm'));
    t.regex(r.stderr, /^hint: generation 1 still serves/m);
    t.true(await until('the check and its sleep gone', allEnded(c.pids), 2000));
    t.is(baton.events.filter((e) => e.event === 'spawn').length, 1, 'nothing was started');
  } finally {
    killAll(c.pids); // a failed test must not wait on them
    await baton.stop();
  }
});

test('a running check is in baton status (pid, age); baton stop kills it and does not wait for it', async (t) => {
  const c = pidsFile(t);
  const baton = new Baton(['--listen', '127.0.0.1:0', '--check', hangingCheck(c.file), '--', 'node', fixture]);
  try {
    await baton.event('active', 1);
    t.is((await ctl(baton, 'reload')).code, 0);
    c.pids.push(...(await recorded(c.file)));
    ownGroup(t, baton.pid, c.pids);
    await new Promise((r) => setTimeout(r, 300));
    const json = await ctl(baton, 'status', '--json');
    const status = JSON.parse(json.stdout) as { helpers?: Array<Record<string, unknown>> };
    t.like(status.helpers, [{ kind: 'check', pid: c.pids[0], command: hangingCheck(c.file) }], json.stdout);
    t.true(Number(status.helpers?.[0]?.ageMs) >= 300);
    const text = (await ctl(baton, 'status')).stdout;
    t.regex(
      text,
      new RegExp(`^ {2}preflight --check running for \\d+ms, pid ${c.pids[0]} \\(its own process group\\)`, 'm'),
    );
    const stopped = performance.now();
    baton.signal('SIGTERM');
    const exit = await Promise.race([baton.exited, new Promise((r) => setTimeout(() => r('still running'), 10_000))]);
    t.deepEqual(exit, { code: 0, signal: null }, 'baton exited after its stop, without waiting for the check');
    t.true(performance.now() - stopped < 10_000);
    t.true(await until('the check and its sleep gone', allEnded(c.pids), 2000));
    t.regex(baton.stderr, /"event":"kill".*"message":"check pid \d+ \(.*\): baton is stopping"/);
  } finally {
    killAll(c.pids); // a failed test must not wait on them
    await baton.stop();
  }
});

// F14: a SIGHUP during stop logged "upgrade requested by SIGHUP", as if an upgrade would follow.
test('a SIGHUP or reload during stop is logged as ignored, and starts nothing', async (t) => {
  // generation 1 ignores SIGTERM: baton stays in its stop until a second SIGTERM kills what is left
  const args = ['--listen', '127.0.0.1:0', '--kill-timeout', '60s'];
  const baton = new Baton([...args, '--', 'node', fixture, 'ignore-term']);
  try {
    await baton.event('active', 1);
    baton.signal('SIGTERM');
    await baton.event('stopping');
    baton.signal('SIGHUP');
    const hup = await baton.event('reload');
    t.is(hup.message, 'upgrade requested by SIGHUP; ignored: baton is stopping');
    const reply = await request(baton.control, { command: 'reload', wait: true }, 20_000);
    t.like(reply, { ok: false, error: { code: 'ERR_BATON_UPGRADE', message: 'upgrade failed: baton is stopping' } });
    const asked = baton.events.filter((e) => e.event === 'reload').map((e) => e.message);
    t.deepEqual(asked, [
      'upgrade requested by SIGHUP; ignored: baton is stopping',
      'upgrade requested by baton reload; ignored: baton is stopping',
    ]);
    baton.signal('SIGTERM');
    t.is((await baton.exited).code, 0, "killed by baton's SIGKILL: a clean stop");
    t.is(baton.events.filter((e) => e.event === 'spawn').length, 1, 'nothing was started');
  } finally {
    await baton.stop();
  }
});

// F14: "request too large" came without a hint and without the control-bad-request line of every other bad request.
test('an oversized request is refused like any bad request: a hint, and a control-bad-request line', async (t) => {
  const baton = new Baton(['--listen', '127.0.0.1:0', '--', 'node', fixture]);
  try {
    await baton.event('active', 1);
    const message = 'request too large: no newline within 65536 bytes';
    const hint = 'see docs/control.md';
    t.deepEqual(await raw(baton.control, 'x'.repeat(70_000)), {
      ok: false,
      error: { code: 'ERR_BATON_REQUEST', message, hint },
    });
    t.is((await baton.waitFor((e) => e.event === 'control-bad-request')).message, message);
    const long = `{"command":"status","pad":"${'x'.repeat(70_000)}"}\n`;
    t.like(await raw(baton.control, long), { ok: false, error: { message, hint } }, 'a line longer than the limit');
    t.like(await raw(baton.control, '{"command":"status"}\n'), { ok: true });
  } finally {
    await baton.stop();
  }
});

// F14: against a frozen baton, `baton status` waited --timeout + 5 s (125 s by default), a timeout meant for
// reload --wait.
test(
  'baton status and stop give up after 10 s on a baton that does ' + 'not answer; reload --wait keeps its --timeout',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-mute-'));
    const path = join(dir, 'mute.sock');
    // A control socket that takes requests and never answers: a frozen baton.
    const held: net.Socket[] = [];
    const mute = net.createServer((s) => void held.push(s.on('error', () => {})));
    await new Promise<void>((r) => mute.listen(path, r));
    // Each is killed after 30 s (it would have waited 125 s before); its time is asserted from below only, as a
    // client's own start can take seconds on a loaded machine.
    const bounded = async (...args: string[]) => {
      const began = performance.now();
      try {
        await run(process.execPath, [cli, ...args, '--control', path], { encoding: 'utf8', timeout: 30_000 });
        return { code: 0, stderr: '', ms: performance.now() - began };
      } catch (err) {
        const e = err as { code: number; stderr: string; killed?: boolean };
        return { code: e.killed ? -1 : e.code, stderr: e.stderr, ms: performance.now() - began };
      }
    };
    try {
      const [status, stop, reload] = await Promise.all([
        bounded('status'),
        bounded('stop'),
        bounded('reload', '--wait', '--timeout', '2s'),
      ]);
      for (const [what, r] of [
        ['status', status],
        ['stop', stop],
      ] as const) {
        t.is(r.code, 1, `${what}: exit 1, not still waiting after 30 s`);
        t.true(r.ms >= 10_000, `${what} gave up after ${Math.round(r.ms)} ms`);
        t.regex(r.stderr, new RegExp(`^error: no answer from ${path} within 10000ms$`, 'm'));
        t.regex(r.stderr, /^hint: baton does not answer: is it stopped \(SIGSTOP\) or stalled\? see its log$/m);
      }
      t.is(reload.code, 1);
      t.true(reload.ms >= 7000, `reload --wait --timeout 2s gave up after ${Math.round(reload.ms)} ms`);
      t.regex(reload.stderr, /^error: no answer from \S+ within 7000ms$/m);
      t.regex(reload.stderr, /^hint: the upgrade may still be running: see baton status$/m);
    } finally {
      for (const s of held) s.destroy();
      mute.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
