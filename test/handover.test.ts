import { existsSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { alive, Baton, fixture, root } from './helpers/baton.js';
import { gaps, get, hammer, servedFrom } from './helpers/load.js';
import { exclusive } from './helpers/lock.js';
import { needs } from './helpers/needs.js';

const python = `${root}examples/python-http.py`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Two upgrades back to back under load. Zero downtime: no failure, no 500 ms without an answer, no
 * request of 1 s or more; and once generations 1 and 2 have exited, generation 3 alone answers.
 */
async function upgradeUnderLoad(t: ExecutionContext, args: string[], command: string[], keepAlive: boolean) {
  const release = await exclusive();
  let baton: Baton | undefined;
  let load: ReturnType<typeof hammer> | undefined;
  try {
    baton = new Baton([...args, '--drain', '200ms', '--', ...command]);
    const first = await baton.event('active', 1);
    const port = await baton.port();
    const began = performance.now();
    load = hammer({ port, keepAlive, concurrency: 2, maxMs: 30_000 });
    t.true(await load.answered(1), 'generation 1 answers before the upgrades');
    await baton.upgradeTo(2);
    const second = await baton.event('active', 2);
    await baton.upgradeTo(3);
    await Promise.all([baton.event('exit', 1), baton.event('exit', 2)]);
    const oldGone = performance.now() - began;
    t.false(alive(first.pid) || alive(second.pid), 'the old generations are gone');
    await sleep(300);
    const r = await load.stop();
    t.deepEqual(gaps(r), []);
    t.deepEqual(servedFrom(r, oldGone), [3], 'only generation 3 answers once the others are gone');
    t.regex(await get(port), /generation=3 /);
    return baton;
  } finally {
    await load?.stop(); // a no-op unless the test failed half-way
    if (baton) t.is((await baton.stop()).code, 0);
    release();
  }
}

const pidfd = ['--listen', '127.0.0.1:0'];
const inherit = ['--listen', 'web=127.0.0.1:0', '--handover', 'inherit', '--ready', 'notify'];

for (const keepAlive of [false, true]) {
  const load = keepAlive ? 'keep-alive' : 'new connections';

  test.serial(`pidfd handover, ${load}: _PID and _FD reach the child, which takes the listener`, async (t) => {
    const baton = await upgradeUnderLoad(t, pidfd, ['node', fixture], keepAlive);
    t.deepEqual(
      baton.events.filter((e) => e.event === 'grab').map((e) => e.generation),
      [1, 2, 3],
    );
  });

  test.serial(`inherit handover, ${load}: LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID, readiness by notify`, async (t) => {
    const baton = await upgradeUnderLoad(t, inherit, ['node', fixture], keepAlive);
    t.falsy(baton.events.find((e) => e.event === 'grab'));
    t.is(baton.events.find((e) => e.event === 'config')!.handover, 'inherit');
  });
}

test.serial('pidfd handover through a wrapper that forks the server: the grab is seen in its child', async (t) => {
  // The shell ignores the stop signal and waits for its server, which drains: as a wrapper must, or baton
  // ends the group once its leader has exited, and with it what the server was answering.
  const wrapper = ['sh', '-c', `trap '' TERM; node ${fixture} & wait`];
  const baton = await upgradeUnderLoad(t, pidfd, wrapper, false);
  const grabs = baton.events.filter((e) => e.event === 'grab').map((e) => e.generation);
  t.deepEqual(grabs, [1, 2, 3], "each generation was seen holding the listener, in the shell's child");
});

// examples/python-http.py speaks HTTP/1.0: every response closes its connection, so keep-alive is moot.
needs('python3').serial('a Python child takes the listener by pidfd_getfd (ctypes)', async (t) => {
  await upgradeUnderLoad(t, pidfd, ['python3', python], false);
});

needs('python3').serial('a Python child under the inherit handover says READY=1', async (t) => {
  await upgradeUnderLoad(t, inherit, ['python3', python], false);
});

function getUnix(socketPath: string): Promise<string> {
  return new Promise<string>((resolve, reject) =>
    http
      .get({ socketPath, path: '/', agent: false, timeout: 5000 }, (res) => {
        let b = '';
        res.on('data', (d) => (b += d)).on('end', () => resolve(b));
      })
      .on('error', reject),
  );
}

test('several listeners: IPv4, IPv6 and a unix socket, named in --listen order', async (t) => {
  const sock = join(tmpdir(), `baton-test-${process.pid}.sock`);
  const listen = ['--listen', 'a=127.0.0.1:0', '--listen', '[::1]:0', '--listen', `unix:${sock}`];
  const baton = new Baton([...listen, '--drain', '100ms', '--', 'node', fixture]);
  try {
    await baton.event('active', 1);
    t.regex(await get(await baton.port(0)), /generation=1 worker=0 listener=127\.0\.0\.1:\d+/);
    t.regex(await get(await baton.port(1), '::1'), /generation=1 worker=0 listener=\[::1\]:\d+/);
    t.regex(await getUnix(sock), new RegExp(`generation=1 worker=0 listener=unix:${sock}`));
    await baton.upgradeTo(2);
    await baton.event('exit', 1);
    // Generation 1 is gone: each listener was handed to generation 2.
    t.regex(await get(await baton.port(0)), /generation=2 worker=0 listener=127\.0\.0\.1:\d+/);
    t.regex(await get(await baton.port(1), '::1'), /generation=2 worker=0 listener=\[::1\]:\d+/);
    t.regex(await getUnix(sock), new RegExp(`generation=2 worker=0 listener=unix:${sock}`));
  } finally {
    await baton.stop();
  }
  t.false(existsSync(sock), 'the unix socket is removed on stop');
});

test('inherit handover with three listeners in order', async (t) => {
  const listen = ['--listen', 'one=127.0.0.1:0', '--listen', 'two=127.0.0.1:0', '--listen', 'three=127.0.0.1:0'];
  const baton = new Baton([...listen, '--handover', 'inherit', '--ready', 'notify', '--', 'node', fixture]);
  try {
    await baton.event('active', 1);
    t.regex(await get(await baton.port(0)), /listener=one$/m);
    t.regex(await get(await baton.port(1)), /listener=two$/m);
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
