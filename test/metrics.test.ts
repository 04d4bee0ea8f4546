import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import test from 'ava';
import { Baton, fdCount, fixture, root } from './helpers/baton.js';
import { refuses, scratch, traced } from './helpers/leftovers.js';
import { metricsPort, promtool, sample, scrape } from './helpers/metrics.js';
import { needs } from './helpers/needs.js';
import { sleep, until } from './helpers/procs.js';
import { inWorld } from './helpers/steer.js';

const L = ['--listen', '127.0.0.1:0'];
const M = ['--metrics', '127.0.0.1:0'];

/** The metrics docs/metrics.md lists: the first cell of each table row that names a `baton_` metric. */
const documented = [...readFileSync(join(root, 'docs/metrics.md'), 'utf8').matchAll(/^\| `(baton_[a-z_]+)`/gm)].map(
  (m) => m[1]!,
);
const exposed = (text: string) => [...new Set([...text.matchAll(/^# TYPE (baton_[a-z_]+) /gm)].map((m) => m[1]!))];

needs('prometheus')(
  'GET /metrics: every metric docs/metrics.md lists, and promtool check metrics accepts it',
  async (t) => {
    const baton = new Baton([...L, ...M, '--', 'node', fixture]);
    try {
      await baton.event('active', 1);
      const r = await scrape({ port: await metricsPort(baton) });
      t.is(r.status, 200);
      t.regex(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
      const steer = ['baton_steered_connections_total', 'baton_steer_no_socket_total']; // only with --steer
      t.deepEqual(exposed(r.body).sort(), documented.filter((m) => !steer.includes(m)).sort());
      const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
      t.is(sample(r.body, 'baton_info', `version="${version}",handover="pidfd"`), 1);
      t.is(sample(r.body, 'baton_workers', 'state="active"'), 1);
      t.is(sample(r.body, 'baton_ready_seconds_count'), 1);
      t.is(sample(r.body, 'baton_listener_accept_queue', 'listener="listener0"'), 0);
      t.true((sample(r.body, 'process_cpu_seconds_total') ?? 0) > 0, "baton's own process metrics");
      t.true((sample(r.body, 'process_resident_memory_bytes') ?? 0) > 0, 'which the dashboard shows');
      const check = promtool(['check', 'metrics'], r.body);
      t.is(check.code, 0, check.output);
    } finally {
      await baton.stop();
    }
  },
);

/** A raw HTTP exchange: what the server sends back until it closes, and how long that took. */
function exchange(port: number, request: string, maxMs = 20_000): Promise<{ reply: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const began = performance.now();
    const s = net.connect(port, '127.0.0.1', () => s.write(request));
    let reply = '';
    s.setTimeout(maxMs, () => s.destroy(new Error(`still open after ${maxMs}ms`)));
    s.on('data', (d) => (reply += d));
    s.on('close', () => resolve({ reply, ms: performance.now() - began }));
    s.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' ? undefined : reject(err)));
  });
}

test('anything but GET /metrics is refused with its status; bad, huge and slow clients are cut off', async (t) => {
  const baton = new Baton([...L, ...M, '--', 'node', fixture]);
  try {
    await baton.event('active', 1);
    const port = await metricsPort(baton);
    const post = await scrape({ port }, 'POST');
    t.is(post.status, 405);
    t.is(post.headers.allow, 'GET, HEAD');
    t.regex(post.body, /baton serves only GET \/metrics/);
    t.is((await scrape({ port }, 'GET', '/')).status, 404);
    t.is((await scrape({ port }, 'GET', '/metrics/../status')).status, 404);
    const head = await scrape({ port }, 'HEAD');
    t.deepEqual([head.status, head.body], [200, '']);
    t.is((await scrape({ port }, 'GET', '/metrics?x=1')).status, 200, 'a query string is ignored');
    t.regex((await exchange(port, 'HELLO\r\n\r\n')).reply, /^HTTP\/1\.1 400 /);
    const huge = `GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(16 * 1024)}\r\n\r\n`;
    t.regex((await exchange(port, huge)).reply, /^HTTP\/1\.1 431 /);
    // 80 clients that send half a request line and then nothing: 64 are held until their headers are late (5 s),
    // the rest are closed as they come. baton's fds are read where /proc lets this user (baton is not dumpable).
    const fds = process.getuid?.() === 0 ? () => fdCount(baton.pid) : undefined;
    const before = fds?.();
    const slow = Array.from({ length: 80 }, () => exchange(port, 'GET /metr'));
    const cut = await Promise.all(slow);
    const [dropped, held] = [cut.filter((c) => c.ms < 2500).length, cut.filter((c) => c.ms >= 4000).length];
    t.true(held <= 64 && dropped >= 16 && held + dropped === 80, `${held} held, ${dropped} closed at once`);
    const slowest = Math.max(...cut.map((c) => c.ms));
    t.true(slowest < 15_000, `the slowest was cut after ${slowest}ms`);
    t.is((await scrape({ port })).status, 200, 'served again');
    if (fds) await until(`no connection left open (${before} fds before)`, () => (fds() === before ? true : undefined));
  } finally {
    await baton.stop();
  }
});

test('--metrics on an address in use: error + hint, nothing started, nothing left behind', async (t) => {
  const busy = net.createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
  t.teardown(() => busy.close());
  const port = (busy.address() as net.AddressInfo).port;
  const args = [...L, '--metrics', `127.0.0.1:${port}`, '--', ...traced('node', fixture)];
  const error = new RegExp(`^cannot listen on --metrics 127\\.0\\.0\\.1:${port}: bind: .*EADDRINUSE`);
  await refuses(t, args, 1, error, new RegExp(`another process listens on this address: pid ${process.pid} `), {
    logged: true,
  });
});

test('--metrics unix:/path in a directory others may write: refused, nothing started or left', async (t) => {
  const open = join(scratch(t), 'open');
  mkdirSync(open);
  chmodSync(open, 0o777); // writable by anyone and not sticky: another user could swap the socket for theirs
  const args = [...L, '--metrics', `unix:${open}/metrics.sock`, '--', ...traced('node', fixture)];
  const error = /^cannot listen on --metrics unix:\S+\/metrics\.sock: refusing \S+ for the metrics socket: /;
  await refuses(t, args, 1, error, /^use a directory that only root or uid \d+ can write/, { logged: true });
  t.false(existsSync(`${open}/metrics.sock`));
});

test('--metrics that is a --listen, the control socket, a steered port or malformed: refused at once', async (t) => {
  const dir = scratch(t);
  const command = ['--', ...traced('node', fixture)];
  const own = /^give --metrics an address of its own, e\.g\. --metrics 127\.0\.0\.1:9464$/;
  await refuses(
    t,
    ['--listen', '127.0.0.1:9464', '--metrics', '127.0.0.1:9464', ...command],
    2,
    /is also --listen/,
    own,
  );
  await refuses(t, ['--listen', ':9464', '--metrics', '127.0.0.1:9464', ...command], 2, /is also --listen/, own);
  const control = join(dir, 'c.sock');
  const args = [...L, '--control', control, '--metrics', `unix:${control}`, ...command];
  await refuses(t, args, 2, /is the control socket$/, own);
  const steer = ['--steer', '127.0.0.1:9000-9999', '--metrics', '127.0.0.1:9464', ...command];
  await refuses(t, steer, 2, /is steered by --steer 127\.0\.0\.1:9000-9999: scrapes would reach the server$/, own);
  await refuses(
    t,
    [...L, '--metrics', '127.0.0.1:x', ...command],
    2,
    /^bad port "x" in --metrics 127\.0\.0\.1:x$/,
    /0 to/,
  );
  await refuses(t, [...L, '--metrics', 'metrics.sock', ...command], 2, /^malformed --metrics metrics\.sock$/, /9464/);
});

test('prom-client is loaded only with --metrics (its modules, as NODE_DEBUG=module reports them)', async (t) => {
  const loads = async (args: string[]) => {
    const baton = new Baton([...L, ...args, '--', 'node', fixture], { NODE_DEBUG: 'module' });
    try {
      await baton.event('active', 1);
      await sleep(300);
      return /node_modules\/prom-client\//.test(baton.stderr);
    } finally {
      await baton.stop();
    }
  };
  t.false(await loads([]));
  t.true(await loads(M));
});

test('--metrics unix:/path: served there, removed when baton stops', async (t) => {
  const path = join(scratch(t), 'metrics.sock');
  const baton = new Baton([...L, '--metrics', `unix:${path}`, '--', 'node', fixture]);
  try {
    await baton.event('active', 1);
    t.is((await baton.event('metrics')).address, `unix:${path}`);
    t.is(statSync(path).mode & 0o777, 0o666, 'as open to local users as a port on 127.0.0.1');
    const r = await scrape({ path });
    t.is(sample(r.body, 'baton_workers', 'state="active"'), 1);
  } finally {
    await baton.stop();
  }
  t.false(existsSync(path));
});

test('gauges: a draining process and its open connection, a pending crash restart and its backoff', async (t) => {
  // Generation 1 crashes 300 ms after its start: generation 2 is its restart, after 1 s of backoff.
  const baton = new Baton([...L, ...M, '--drain', '20s', '--', 'node', fixture, 'crash:300', '1']);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const target = { port: await metricsPort(baton) };
    await baton.event('restart');
    const pending = await scrape(target);
    t.is(sample(pending.body, 'baton_backoff_seconds'), 1);
    t.is(sample(pending.body, 'baton_crash_restarts_total'), 1);
    await baton.event('active', 2);
    t.is(sample((await scrape(target)).body, 'baton_backoff_seconds'), 0);
    // One keep-alive connection to generation 2, then an upgrade: 2 drains with it open for 20 s.
    const port = await baton.port();
    await new Promise((resolve, reject) => http.get({ port, host: '127.0.0.1', agent }, resolve).on('error', reject));
    baton.signal('SIGHUP');
    await baton.event('draining', 2);
    const draining = await scrape(target);
    t.is(sample(draining.body, 'baton_workers', 'state="draining"'), 1);
    t.is(sample(draining.body, 'baton_generations', 'state="active"'), 1);
    t.is(sample(draining.body, 'baton_draining_connections'), 1);
    agent.destroy();
    const open = async () => sample((await scrape(target)).body, 'baton_draining_connections');
    for (let i = 0; i < 100 && (await open()) !== 0; i++) await sleep(100);
    t.is(await open(), 0, 'the closed connection is no longer counted');
  } finally {
    agent.destroy();
    await baton.stop();
  }
});

test.serial('a self-upgrade carries the metrics listener: scrapes every 20 ms through it, none refused', async (t) => {
  const baton = new Baton([...L, ...M, '--', 'node', fixture]);
  try {
    await baton.event('active', 1);
    const port = await metricsPort(baton);
    let [ok, failed, stop] = [0, [] as string[], false];
    const loop = (async () => {
      for (let i = 0; i < 3000 && !stop; i++) {
        await scrape({ port }, 'GET', '/metrics', 20_000).then(
          (r) => (r.status === 200 ? ok++ : failed.push(String(r.status))),
          (err: Error) => failed.push(err.message),
        );
        await sleep(20);
      }
    })();
    baton.signal('SIGUSR2');
    await baton.event('resumed', undefined, 60_000);
    await sleep(500);
    stop = true;
    await loop;
    t.deepEqual(failed, []);
    t.true(ok > 10, `${ok} scrapes`);
    const after = await scrape({ port });
    t.is(sample(after.body, 'baton_workers', 'state="active"'), 1, 'the new program serves the same address');
    t.is(baton.events.filter((e) => e.event === 'metrics').length, 2, 'each program said where it serves');
  } finally {
    await baton.stop();
  }
});

test.serial('a self-upgrade under a --config that drops --metrics closes it; one that adds it opens it', async (t) => {
  const file = join(scratch(t), 'baton.json');
  const options = { listen: ['127.0.0.1:0'], command: ['node', fixture] };
  writeFileSync(file, JSON.stringify({ ...options, metrics: '127.0.0.1:0' }));
  const baton = new Baton(['--config', file]);
  try {
    await baton.event('active', 1);
    const port = await metricsPort(baton);
    writeFileSync(file, JSON.stringify(options));
    baton.signal('SIGUSR2');
    await baton.event('resumed', undefined, 60_000);
    const refused = await scrape({ port }).then(
      () => 'answered',
      (err: NodeJS.ErrnoException) => err.code,
    );
    t.is(refused, 'ECONNREFUSED');
    writeFileSync(file, JSON.stringify({ ...options, metrics: '127.0.0.1:0' }));
    const from = baton.events.length;
    baton.signal('SIGUSR2');
    const e = await baton.waitFor((x) => x.event === 'metrics', 60_000, from);
    const again = await scrape({ port: Number(String(e.address).split(':').pop()) });
    t.is(again.status, 200);
  } finally {
    await baton.stop();
  }
});

needs('bpf').serial('--steer: the BPF program counters, per rule', (t) =>
  inWorld(false, async (w) => {
    const path = join(scratch(t), 'metrics.sock');
    const args = ['--steer', '127.0.0.1:7,77', '--steer', '127.0.0.1:8000-8009', '--metrics', `unix:${path}`];
    const baton = w.baton([...args, '--', 'node', 'examples/tcp-echo.mjs']);
    await baton.event('active', 1);
    const r = await w.echo(['127.0.0.1:7', '127.0.0.1:77', '127.0.0.1:8003']);
    t.deepEqual(Object.values(r), ['ok', 'ok', 'ok']);
    const text = (await scrape({ path })).body;
    t.is(sample(text, 'baton_steered_connections_total', 'rule="127.0.0.1:7,77"'), 2);
    t.is(sample(text, 'baton_steered_connections_total', 'rule="127.0.0.1:8000-8009"'), 1);
    t.is(sample(text, 'baton_steer_no_socket_total', 'rule="127.0.0.1:7,77"'), 0);
    t.is(sample(text, 'baton_generation_accept_queue', 'state="active"'), 0, "the generation's own socket");
    await baton.stop();
  }),
);
