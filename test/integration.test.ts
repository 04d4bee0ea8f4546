import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { alive, Baton, childrenOf, cli, fixture, root } from './helpers/baton.js';
import { freePort, get, hammer } from './helpers/load.js';
import { createNotifySocket, receiveAll } from '../supervisor/sys/socket.js';
import { closeFd } from '../supervisor/sys/fd.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


test.serial('systemd: the exact sd_notify sequence on NOTIFY_SOCKET; children never get it', async (t) => {
  const path = join(mkdtempSync(join(tmpdir(), 'baton-notify-')), 'notify.sock');
  const fd = createNotifySocket(path);
  const messages: string[] = [];
  const poll = setInterval(() => messages.push(...receiveAll(fd)), 5);
  try {
    const baton = new Baton(['--listen', '127.0.0.1:0', '--drain', '100ms', '--', 'node', fixture], { NOTIFY_SOCKET: path });
    const spawned = await baton.event('spawn', 1);
    await baton.event('active', 1);
    t.false(readFileSync(`/proc/${spawned.pid}/environ`, 'utf8').includes(path), 'the child has its own NOTIFY_SOCKET');
    await baton.upgradeTo(2);
    await baton.stop();
    await sleep(50);
    messages.push(...receiveAll(fd));
    t.deepEqual(
      messages.map((m) => m.replace(/MONOTONIC_USEC=\d+/, 'MONOTONIC_USEC=N').replace(/pid \d+/, 'pid P')),
      [
        `READY=1\nMAINPID=${baton.pid}\nSTATUS=generation 1 active (pid P)`,
        'RELOADING=1\nMONOTONIC_USEC=N\nSTATUS=upgrading',
        'READY=1\nSTATUS=generation 2 active',
        'STOPPING=1\nSTATUS=stopping',
      ],
    );
    const usec = BigInt(/MONOTONIC_USEC=(\d+)/.exec(messages[1]!)![1]!);
    const now = process.hrtime.bigint() / 1000n;
    t.true(usec <= now && now - usec < 60_000_000n, 'MONOTONIC_USEC is CLOCK_MONOTONIC');
  } finally {
    clearInterval(poll);
    closeFd(fd);
  }
});

test.serial('systemd socket activation: baton adopts LISTEN_FDS from systemd-socket-activate', async (t) => {
  const port = await freePort();
  const baton = new Baton(['--listen', `web=127.0.0.1:${port}`, '--', 'node', fixture], {}, ['systemd-socket-activate', '-l', `127.0.0.1:${port}`, '--fdname=web']);
  try {
    // systemd-socket-activate execs baton on the first connection, which then waits in the queue.
    const first = (async () => {
      for (let i = 0; ; i++) {
        try {
          return await get(port);
        } catch (err) {
          if (i > 100 || (err as NodeJS.ErrnoException).code !== 'ECONNREFUSED') throw err;
          await sleep(50); // systemd-socket-activate is not listening yet
        }
      }
    })();
    const listening = await baton.event('listening');
    t.is(listening.activated, true);
    t.is(listening.fd, 3);
    t.regex(await first, /generation=1 worker=0 listener=127\.0\.0\.1:\d+/);
    await baton.upgradeTo(2);
    t.regex(await get(port), /generation=\d/);
  } finally {
    await baton.stop();
  }
});

test.serial('as PID 1 in its own PID namespace: orphans are reaped, SIGTERM stops gracefully with the child status', async (t) => {
  // The command leaves an orphan (a subshell's sleep) that the namespace reparents to baton.
  const command = ['sh', '-c', `(sleep 0.3 &); exec node ${fixture}`];
  const unshare = spawn('unshare', ['--pid', '--fork', '--kill-child', '--mount-proc', process.execPath, cli, '--log-format', 'json', '--control', join(mkdtempSync(join(tmpdir(), 'baton-pid1-')), 'c.sock'), '--listen', '127.0.0.1:0', '--', ...command], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  unshare.stderr.on('data', (d) => (stderr += d));
  try {
    const events = () => stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    for (let i = 0; i < 100 && !events().some((e) => e.event === 'reaped'); i++) await sleep(100);
    t.regex(String(events().find((e) => e.event === 'reaped')?.message), /^orphan pid \d+ exited with code 0$/);
    t.truthy(events().find((e) => e.event === 'active' && e.generation === 1));
    t.true(events().every((e) => e.pid !== undefined) && events()[0]!.pid === 1, 'baton is PID 1');
    const [baton] = childrenOf(unshare.pid!);
    const zombies = childrenOf(baton!).filter((p) => readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]!.startsWith('Z'));
    t.deepEqual(zombies, []);
    process.kill(baton!, 'SIGTERM');
    const code = await new Promise((r) => unshare.once('exit', r));
    t.is(code, 0);
    t.like(events().find((e) => e.event === 'stopped'), { pid: 1, code: 0 });
  } finally {
    if (unshare.exitCode === null) unshare.kill('SIGKILL');
  }
});

test.serial('--subreaper: orphans of the command are reaped by baton', async (t) => {
  const baton = new Baton(['--subreaper', '--listen', '127.0.0.1:0', '--', 'sh', '-c', `(sleep 0.3 &); exec node ${fixture}`]);
  try {
    const reaped = await baton.event('reaped', undefined, 10_000);
    t.regex(String(reaped.message), /^orphan pid \d+ exited with code 0$/);
  } finally {
    await baton.stop();
  }
});

test.serial('self-upgrade: SIGUSR2 under load keeps the pid and the serving generation; SIGHUP still works', async (t) => {
  const baton = new Baton(['--listen', '127.0.0.1:0', '--drain', '200ms', '--', 'node', fixture]);
  try {
    const first = await baton.event('active', 1);
    const port = await baton.port();
    const load = hammer({ port, keepAlive: false, concurrency: 4, maxMs: 30_000 });
    await sleep(200);
    baton.signal('SIGUSR2');
    const resumed = await baton.event('resumed');
    t.is(resumed.pid, baton.pid, 'the new program runs under the same pid');
    t.is(resumed.serving, 1);
    await sleep(300);
    t.true(alive(first.pid), 'the serving generation is not disturbed');
    await baton.upgradeTo(2);
    await baton.waitFor((e) => e.event === 'exit' && e.generation === 1);
    const r = await load.stop();
    t.is(r.failed, 0, JSON.stringify(r.failures));
    t.true((r.generations.get(2) ?? 0) > 0);
    t.is(childrenOf(baton.pid).length, 1);
  } finally {
    t.is((await baton.stop()).code, 0);
  }
});
