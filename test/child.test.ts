import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import type { Readable } from 'node:stream';
import test, { type ExecutionContext } from 'ava';
import { listeningSockets } from '../supervisor/sys/proc-net.js';
import { alive, Baton, fixture, keeperOf, root } from './helpers/baton.js';
import { get } from './helpers/load.js';
import { needs } from './helpers/needs.js';
import { socketsOf } from './helpers/procs.js';

const drainServer = `${root}test/fixtures/drain-server.mjs`;
/** docs/protocol.md: "its grace period defaults to 10 s". */
const DEFAULT_GRACE = 10_000;
/** Node's timers count whole milliseconds, so one may fire up to 1 ms before its time measured elsewhere. */
const TIMER_SLACK = 2;
/** How late a close may come after its time on a shared, noisy 2-core machine. */
const LATE = 5_000;
/** A grace no test waits for: a close before it is the drain's own doing. */
const LONG = 60_000;

/** What a process writes, awaited by pattern as it arrives. */
class Lines {
  text = '';
  private readonly waiters = new Set<() => void>();

  constructor(stream: Readable) {
    stream.on('data', (d: Buffer) => {
      this.text += d;
      for (const w of this.waiters) w();
    });
  }

  waitFor(re: RegExp, timeout = 20_000): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const m = re.exec(this.text);
        if (!m) return;
        done();
        resolve(m);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no ${re} within ${timeout} ms in:\n${this.text}`));
      }, timeout);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  count(re: RegExp): number {
    return this.text.match(new RegExp(re.source, 'gm'))?.length ?? 0;
  }
}

/** test/fixtures/drain-server.mjs alone (not under baton), on a port of its own. */
class Drainer {
  readonly child: ChildProcess;
  readonly out: Lines;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  port = 0;

  constructor(env: Record<string, string>) {
    const clean = { ...process.env };
    for (const k of ['_PID', '_FD', 'LISTEN_FDS', 'LISTEN_PID', 'NOTIFY_SOCKET', 'BATON_GENERATION']) delete clean[k];
    this.child = spawn(process.execPath, [drainServer], {
      cwd: root,
      env: { ...clean, PORT: '0', ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.out = new Lines(this.child.stdout!);
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  /** Started and listening; killed at the test's end if it is still running then. */
  static async start(t: ExecutionContext, env: Record<string, string>): Promise<Drainer> {
    const d = new Drainer(env);
    t.teardown(() => {
      if (d.child.exitCode === null && d.child.signalCode === null) d.child.kill('SIGKILL');
    });
    d.port = Number((await d.out.waitFor(/ port (\d+)$/m))[1]);
    return d;
  }

  /** How it ended: exit status, `onDrained` calls, and the status the process itself said it exits with. */
  async end(): Promise<{ code: number | null; signal: NodeJS.Signals | null; onDrained: number; said: string }> {
    const { code, signal } = await within(this.exited, 'the drainer to exit');
    return { code, signal, onDrained: this.out.count(/ drained$/), said: /exit .*$/m.exec(this.out.text)?.[0] ?? '' };
  }
}

interface Reply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** One raw HTTP/1.1 connection: keep-alive unless the server says otherwise; replies read by Content-Length. */
class Conn {
  readonly socket: net.Socket;
  /** When the socket closed (performance.now()), whether the server ended it cleanly, and bytes left unread. */
  readonly closed: Promise<{ at: number; clean: boolean; rest: string }>;
  private buf = '';
  private wake = () => {};

  constructor(t: ExecutionContext, port: number) {
    this.socket = net.connect(port, '127.0.0.1');
    t.teardown(() => void this.socket.destroy());
    this.socket.setEncoding('latin1');
    let ended = false;
    let error = '';
    this.socket.on('data', (d: string) => {
      this.buf += d;
      this.wake();
    });
    this.socket.on('end', () => (ended = true));
    this.socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    this.closed = new Promise((resolve) =>
      this.socket.once('close', () => {
        this.wake();
        resolve({ at: performance.now(), clean: ended && !error, rest: this.buf });
      }),
    );
  }

  request(path: string): Promise<Reply> {
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    return new Promise((resolve, reject) => {
      this.wake = () => {
        const reply = this.take();
        if (reply) resolve(reply);
        else if (this.socket.destroyed) reject(new Error(`closed before a full reply to ${path}: ${this.buf}`));
      };
      this.wake();
    });
  }

  /** A complete reply at the head of the buffer, removed from it. */
  private take(): Reply | undefined {
    const end = this.buf.indexOf('\r\n\r\n');
    if (end < 0) return undefined;
    const [statusLine, ...lines] = this.buf.slice(0, end).split('\r\n');
    const headers: Record<string, string> = {};
    for (const l of lines) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
    const length = Number(headers['content-length']);
    if (this.buf.length < end + 4 + length) return undefined;
    const body = this.buf.slice(end + 4, end + 4 + length);
    this.buf = this.buf.slice(end + 4 + length);
    return { status: Number(statusLine!.split(' ')[1]), headers, body };
  }
}

/** `p`, or a rejection after `ms`: a drain that never ends fails the test instead of hanging it. */
function within<T>(p: Promise<T>, what: string, ms = 30_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`waited ${ms} ms for ${what}`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

function connect(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve();
    });
    s.once('error', reject);
  });
}

/** The TCP port `pid` listens on, from its fds and /proc/net/tcp (polled until it listens, at most `timeout`). */
async function listeningPort(pid: number, timeout = 10_000): Promise<number> {
  const deadline = Date.now() + timeout;
  for (;;) {
    const inodes = new Set(socketsOf(pid).map((l) => Number(/\d+/.exec(l)![0])));
    const found = listeningSockets().find((s) => inodes.has(s.inode));
    if (found) return found.port;
    if (Date.now() > deadline) throw new Error(`pid ${pid} listens on no TCP port after ${timeout} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('the child helper binds by itself when not under baton', async (t) => {
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0' };
  for (const k of ['_PID', '_FD', 'LISTEN_FDS', 'LISTEN_PID', 'BATON_GENERATION']) delete env[k];
  const child = spawn(process.execPath, [`${root}examples/http-server.mjs`], { env, stdio: 'ignore' });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  try {
    const port = await listeningPort(child.pid!);
    t.regex(await get(port), new RegExp(`^pid=${child.pid} generation=0\n$`));
  } finally {
    child.kill('SIGTERM');
  }
  t.deepEqual(await within(exited, 'it to exit'), { code: 0, signal: null }, 'drains and exits 0 on SIGTERM');
});

test('drain: a request in flight at the stop signal completes, with Connection: close', async (t) => {
  const d = await Drainer.start(t, { DRAIN_GRACE: String(LONG), KEEPALIVE_MS: String(LONG) });
  const c = new Conn(t, d.port);
  const reply = c.request('/hold');
  await d.out.waitFor(/ request \/hold$/m);
  d.child.kill('SIGTERM');
  // Ended after that reply, not at the grace (60 s, beyond this wait).
  await lastReply(t, d, c, await reply, '/hold');
});

test('drain: a request on an idle keep-alive connection during the grace gets 200, Connection: close', async (t) => {
  const d = await Drainer.start(t, { DRAIN_GRACE: String(LONG), KEEPALIVE_MS: String(LONG) });
  const c = new Conn(t, d.port);
  const before = await c.request('/before');
  t.is(before.headers.connection, 'keep-alive');
  d.child.kill('SIGTERM');
  // The fixture's handler runs after the helper's: from here on the server drains.
  await d.out.waitFor(/ signal SIGTERM$/m);
  await t.throwsAsync(connect(d.port), { code: 'ECONNREFUSED' }, 'the listener is closed at once');
  await lastReply(t, d, c, await c.request('/during'), '/during');
});

/**
 * `r` is the drainer's answer to `path` with `Connection: close`; the server then ends the connection
 * cleanly, and the process exits 0 by itself after one onDrained.
 */
async function lastReply(t: ExecutionContext, d: Drainer, c: Conn, r: Reply, path: string): Promise<void> {
  t.is(r.status, 200);
  t.is(r.headers.connection, 'close');
  t.is(r.body, `pid=${d.child.pid} generation=0 path=${path}\n`);
  const closed = await within(c.closed, 'the server to end the connection after its reply');
  t.true(closed.clean);
  t.is(closed.rest, '');
  t.deepEqual(await d.end(), { code: 0, signal: null, onDrained: 1, said: 'exit 0 drained=1' });
}

/** Signals a drainer holding one idle keep-alive connection; ms from the signal to the server closing it. */
async function idleClosedAfter(t: ExecutionContext, env: Record<string, string>): Promise<number> {
  const d = await Drainer.start(t, { KEEPALIVE_MS: String(LONG), ...env });
  const c = new Conn(t, d.port);
  t.is((await c.request('/')).headers.connection, 'keep-alive');
  const signalled = performance.now();
  d.child.kill('SIGTERM');
  const closed = await within(c.closed, 'the server to close it');
  t.true(closed.clean, 'closed by the server, not reset');
  t.is(closed.rest, '', 'with nothing sent on it');
  t.deepEqual(await d.end(), { code: 0, signal: null, onDrained: 1, said: 'exit 0 drained=1' });
  t.log(`closed ${Math.round(closed.at - signalled)} ms after the signal`);
  return closed.at - signalled;
}

test('drain: an untouched idle keep-alive connection is closed at the grace time, not before', async (t) => {
  const grace = 1500;
  const after = await idleClosedAfter(t, { DRAIN_GRACE: String(grace) });
  t.true(after >= grace - TIMER_SLACK, `closed ${Math.round(after)} ms after the signal`);
  t.true(after < grace + LATE, `closed ${Math.round(after)} ms after the signal`);
});

test('drain: the default grace is 10 s', async (t) => {
  const after = await idleClosedAfter(t, {});
  t.true(after >= DEFAULT_GRACE - TIMER_SLACK, `closed ${Math.round(after)} ms after the signal`);
  t.true(after < DEFAULT_GRACE + LATE, `closed ${Math.round(after)} ms after the signal`);
});

test('drain: a request still in flight at the grace time is cut, and the process exits 0', async (t) => {
  const grace = 1500;
  const d = await Drainer.start(t, { DRAIN_GRACE: String(grace), KEEPALIVE_MS: String(LONG) });
  const c = new Conn(t, d.port);
  void c.request('/hang').catch(() => undefined);
  await d.out.waitFor(/ request \/hang$/m);
  const signalled = performance.now();
  d.child.kill('SIGTERM');
  const closed = await within(c.closed, 'the server to close it');
  const after = closed.at - signalled;
  t.is(closed.rest, '', 'no reply');
  t.true(after >= grace - TIMER_SLACK && after < grace + LATE, `closed ${Math.round(after)} ms after the signal`);
  t.deepEqual(await d.end(), { code: 0, signal: null, onDrained: 1, said: 'exit 0 drained=1' });
});

test('drain: onDrained runs once, when the last of several connections has closed', async (t) => {
  const grace = 1500;
  const d = await Drainer.start(t, { DRAIN_GRACE: String(grace), KEEPALIVE_MS: String(LONG) });
  const idle = new Conn(t, d.port);
  await idle.request('/');
  const silent = new Conn(t, d.port); // connected, never sends a request
  const held = new Conn(t, d.port);
  const reply = held.request('/hold');
  await d.out.waitFor(/ request \/hold$/m);
  t.is(d.out.count(/ request /), 2, 'the silent connection sent nothing');
  const signalled = performance.now();
  d.child.kill('SIGTERM');
  t.is((await reply).headers.connection, 'close');
  await d.out.waitFor(/ drained$/m);
  // The idle and the silent connection stay open until the grace: onDrained cannot come earlier.
  const drainedAfter = performance.now() - signalled;
  t.true(drainedAfter >= grace - TIMER_SLACK, `onDrained ${Math.round(drainedAfter)} ms after the signal`);
  for (const c of [idle, silent, held]) t.true((await within(c.closed, 'the server to close it')).clean);
  t.deepEqual(await d.end(), { code: 0, signal: null, onDrained: 1, said: 'exit 0 drained=1' });
});

test('drain: a custom stop signal starts the drain, and SIGTERM then does not', async (t) => {
  const env = { DRAIN_SIGNAL: 'SIGINT', DRAIN_GRACE: String(LONG), KEEPALIVE_MS: String(LONG) };
  const [a, b] = await Promise.all([Drainer.start(t, env), Drainer.start(t, env)]);
  const [ca, cb] = [new Conn(t, a.port), new Conn(t, b.port)];
  const [ra, rb] = [ca.request('/hold'), cb.request('/hold')];
  rb.catch(() => undefined);
  await Promise.all([a.out.waitFor(/ request \/hold$/m), b.out.waitFor(/ request \/hold$/m)]);

  a.child.kill('SIGINT');
  const r = await ra;
  t.is(r.status, 200);
  t.is(r.headers.connection, 'close');
  t.true((await within(ca.closed, 'the server to close it')).clean);
  t.deepEqual(await a.end(), { code: 0, signal: null, onDrained: 1, said: 'exit 0 drained=1' });

  // SIGTERM is not this server's stop signal: nothing handles it, and Node's default action ends it.
  b.child.kill('SIGTERM');
  t.deepEqual(await b.end(), { code: null, signal: 'SIGTERM', onDrained: 0, said: '' });
  await t.throwsAsync(rb, { message: /closed before a full reply/ });
  t.notRegex(b.out.text, / signal /);
});

test('drain under baton: the old generation finishes its requests, then exits 0 by itself', async (t) => {
  const grace = 1500;
  const baton = new Baton(
    ['--listen', '127.0.0.1:0', '--drain', '100ms', '--kill-timeout', '20s', '--', 'node', drainServer],
    { DRAIN_GRACE: String(grace), KEEPALIVE_MS: String(LONG) },
  );
  const out = new Lines(baton.child.stdout!);
  try {
    const first = await baton.event('spawn', 1);
    await baton.event('active', 1);
    const port = await baton.port();
    const idle = new Conn(t, port);
    t.is((await idle.request('/')).body, `pid=${first.pid} generation=1 path=/\n`);
    const held = new Conn(t, port);
    const reply = held.request('/hold');
    await out.waitFor(new RegExp(`^${first.pid} request /hold$`, 'm'));

    baton.signal('SIGHUP');
    await out.waitFor(new RegExp(`^${first.pid} signal SIGTERM$`, 'm'));
    const signalled = performance.now();
    const r = await reply;
    t.is(r.body, `pid=${first.pid} generation=1 path=/hold\n`);
    t.is(r.headers.connection, 'close');
    // Generation 1 still answers on its idle keep-alive connection, and says it is the last answer.
    const during = await idle.request('/during');
    t.is(during.body, `pid=${first.pid} generation=1 path=/during\n`);
    t.is(during.headers.connection, 'close');
    const second = await baton.event('spawn', 2);
    t.is(await get(port), `pid=${second.pid} generation=2 path=/\n`);

    await out.waitFor(new RegExp(`^${first.pid} exit 0 drained=1$`, 'm'));
    const deadline = Date.now() + 20_000;
    while (alive(first.pid) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
    t.false(alive(first.pid));
    t.true(performance.now() - signalled < 10_000, 'gone long before --kill-timeout 20s');
    const exit = await baton.event('exit', 1);
    t.is(exit.code, 0);
    t.is(exit.message, 'exited with code 0');
    t.is(out.count(new RegExp(`^${first.pid} drained$`)), 1);
  } finally {
    t.is((await baton.stop()).code, 0);
  }
});

test('examples/tcp-echo.mjs echoes under baton, across an upgrade', async (t) => {
  const baton = new Baton(['--listen', '127.0.0.1:0', '--drain', '100ms', '--', 'node', 'examples/tcp-echo.mjs']);
  const echo = (port: number, text: string) =>
    new Promise<string>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => s.end(text));
      let got = '';
      s.on('data', (d) => (got += d))
        .on('end', () => resolve(got))
        .on('error', reject);
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

needs('root')('--user with the inherit handover: the child runs as that user', async (t) => {
  const baton = new Baton([
    '--listen',
    '127.0.0.1:0',
    '--handover',
    'inherit',
    '--ready',
    'notify',
    '--user',
    'nobody',
    '--',
    'node',
    fixture,
  ]);
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

needs('root')('--user with the pidfd handover: the generation pulls from a keeper that runs as the user', async (t) => {
  const baton = new Baton(['--listen', '127.0.0.1:0', '--user', 'nobody', '--', 'node', fixture]);
  try {
    const { pid } = await baton.event('active', 1);
    const uid = (p: number) => /Uid:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))![1];
    t.deepEqual([uid(pid), uid(keeperOf(baton.pid)!)], ['65534', '65534']);
    t.regex(await get(await baton.port()), /generation=1/);
  } finally {
    await baton.stop();
  }
});

test('the child helper turns a bad _FD into EBADF with a hint', async (t) => {
  const child = spawn(process.execPath, [fixture], {
    env: { ...process.env, _PID: String(process.pid), _FD: '999' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const code = await new Promise((r) => child.once('exit', r));
  t.is(code, 1);
  t.regex(stderr, /pidfd_getfd: Bad file descriptor \(EBADF\)/);
  t.regex(stderr, /hint: 'the target has no such fd/);
});
