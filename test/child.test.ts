import test from 'ava';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { Baton, fixture, root } from './helpers/baton.js';
import { get } from './helpers/load.js';

test('the child helper binds by itself when not under baton', async (t) => {
  const port = 20000 + (process.pid % 20000);
  const child = spawn(process.execPath, [`${root}examples/http-server.mjs`], { env: { ...process.env, PORT: String(port) }, stdio: 'ignore' });
  try {
    let body = '';
    for (let i = 0; i < 50 && !body; i++) {
      body = await get(port).catch(() => '');
      if (!body) await new Promise((r) => setTimeout(r, 100));
    }
    t.regex(body, new RegExp(`pid=${child.pid} generation=0`));
  } finally {
    child.kill('SIGTERM');
  }
  t.is(await new Promise((r) => child.once('exit', r)), 0, 'drains and exits 0 on SIGTERM');
});

test('examples/tcp-echo.mjs echoes under baton, across an upgrade', async (t) => {
  const baton = new Baton(['--listen', '127.0.0.1:0', '--drain', '100ms', '--', 'node', 'examples/tcp-echo.mjs']);
  const echo = (port: number, text: string) =>
    new Promise<string>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => s.end(text));
      let got = '';
      s.on('data', (d) => (got += d)).on('end', () => resolve(got)).on('error', reject);
    });
  try {
    await baton.event('active', 1);
    const port = await baton.port();
    t.is(await echo(port, 'Steer'), 'Steer');
    await baton.upgradeTo(2);
    t.is(await echo(port, 'on multiple ports'), 'on multiple ports');
  } finally {
    t.is((await baton.stop()).code, 0);
  }
});

test('--user with the inherit handover: the child runs as that user', async (t) => {
  const baton = new Baton(['--listen', '127.0.0.1:0', '--handover', 'inherit', '--ready', 'notify', '--user', 'nobody', '--', 'node', fixture]);
  try {
    const spawned = await baton.event('spawn', 1);
    await baton.event('active', 1);
    const { readFileSync } = await import('node:fs');
    const uid = /Uid:\s+(\d+)/.exec(readFileSync(`/proc/${spawned.pid}/status`, 'utf8'))![1];
    t.is(uid, '65534');
    t.regex(await get(await baton.port()), /generation=1/);
  } finally {
    await baton.stop();
  }
});

test('--user with the pidfd handover: EPERM reaches the user with the fix', async (t) => {
  const baton = new Baton(['--listen', '127.0.0.1:0', '--user', 'nobody', '--ready', 'grab', '--', 'node', fixture]);
  const { code } = await baton.exited;
  t.is(code, 1);
  t.regex(baton.stderr, /^error: generation 1 failed: exited with code 1 before ready \(child said: pidfd_getfd: Operation not permitted \(EPERM\), errno 1\)$/m);
  t.regex(baton.stderr, /^hint: .*--handover inherit/m);
});

test('the child helper turns a bad _FD into EBADF with a hint', async (t) => {
  const child = spawn(process.execPath, [fixture], { env: { ...process.env, _PID: String(process.pid), _FD: '999' }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const code = await new Promise((r) => child.once('exit', r));
  t.is(code, 1);
  t.regex(stderr, /pidfd_getfd: Bad file descriptor \(EBADF\)/);
  t.regex(stderr, /hint: 'the target has no such fd/);
});
