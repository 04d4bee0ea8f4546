import test from 'ava';
import { existsSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Baton, fixture, root } from './helpers/baton.js';
import { get, hammer } from './helpers/load.js';

const python = `${root}examples/python-http.py`;

async function upgradeUnderLoad(t: import('ava').ExecutionContext, args: string[], command: string[]) {
  const baton = new Baton([...args, '--drain', '200ms', '--', ...command]);
  try {
    await baton.event('active', 1);
    const port = await baton.port();
    const load = hammer({ port, keepAlive: false, concurrency: 2, maxMs: 30_000 });
    await baton.upgradeTo(2);
    await baton.upgradeTo(3);
    await baton.event('exit', 2);
    const r = await load.stop();
    t.is(r.failed, 0, JSON.stringify(r.failures));
    t.true((r.generations.get(3) ?? 0) > 0);
    return baton;
  } finally {
    t.is((await baton.stop()).code, 0);
  }
}

test('pidfd handover: _PID and _FD reach the child, which takes the listener', async (t) => {
  const baton = await upgradeUnderLoad(t, ['--listen', '127.0.0.1:0'], ['node', fixture]);
  t.truthy(baton.events.find((e) => e.event === 'grab' && e.generation === 3));
});

test('inherit handover: LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID, readiness by notify', async (t) => {
  const baton = await upgradeUnderLoad(t, ['--listen', 'web=127.0.0.1:0', '--handover', 'inherit', '--ready', 'notify'], ['node', fixture]);
  t.falsy(baton.events.find((e) => e.event === 'grab'));
  t.is(baton.events.find((e) => e.event === 'config')!.handover, 'inherit');
});

test('a Python child takes the listener by pidfd_getfd (ctypes)', async (t) => {
  await upgradeUnderLoad(t, ['--listen', '127.0.0.1:0'], ['python3', python]);
});

test('a Python child under the inherit handover says READY=1', async (t) => {
  await upgradeUnderLoad(t, ['--listen', '127.0.0.1:0', '--handover', 'inherit', '--ready', 'notify'], ['python3', python]);
});

test('several listeners: IPv4, IPv6 and a unix socket, named in --listen order', async (t) => {
  const sock = join(tmpdir(), `baton-test-${process.pid}.sock`);
  const baton = new Baton(['--listen', 'a=127.0.0.1:0', '--listen', '[::1]:0', '--listen', `unix:${sock}`, '--', 'node', fixture]);
  try {
    await baton.event('active', 1);
    t.regex(await get(await baton.port(0)), /generation=1 worker=0 listener=127\.0\.0\.1:\d+/);
    t.regex(await get(await baton.port(1), '::1'), /generation=1 worker=0 listener=\[::1\]:\d+/);
    const body = await new Promise<string>((resolve, reject) =>
      http.get({ socketPath: sock, path: '/' }, (res) => {
        let b = '';
        res.on('data', (d) => (b += d)).on('end', () => resolve(b));
      }).on('error', reject),
    );
    t.regex(body, new RegExp(`listener=unix:${sock}`));
    await baton.upgradeTo(2);
    t.regex(await get(await baton.port(1), '::1'), /generation=\d/);
  } finally {
    await baton.stop();
  }
  t.false(existsSync(sock), 'the unix socket is removed on stop');
});

test('inherit handover with three listeners in order', async (t) => {
  const baton = new Baton(['--listen', 'one=127.0.0.1:0', '--listen', 'two=127.0.0.1:0', '--listen', 'three=127.0.0.1:0', '--handover', 'inherit', '--ready', 'notify', '--', 'node', fixture]);
  try {
    await baton.event('active', 1);
    t.regex(await get(await baton.port(0)), /listener=one$/m);
    t.regex(await get(await baton.port(2)), /listener=three$/m);
  } finally {
    await baton.stop();
  }
});

test(':PORT is dual-stack; 0.0.0.0:PORT and [::]:PORT listen on every address', async (t) => {
  const baton = new Baton(['--listen', ':0', '--listen', '0.0.0.0:0', '--listen', '[::]:0', '--', 'node', fixture]);
  try {
    await baton.event('active', 1);
    t.regex(String(baton.events.filter((e) => e.event === 'listening')[0]!.listener), /^\[::\]:\d+$/);
    t.regex(await get(await baton.port(0), '127.0.0.1'), /generation=1/);
    t.regex(await get(await baton.port(0), '::1'), /generation=1/);
    t.regex(await get(await baton.port(1), '127.0.0.1'), /generation=1/);
    t.regex(await get(await baton.port(2), '::1'), /generation=1/);
  } finally {
    await baton.stop();
  }
});
