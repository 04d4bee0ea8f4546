// F4: baton's log writes never block it, whoever else writes to its stderr and however slowly it is read.
import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { request } from '../supervisor/control/client.js';
import type { BatonError } from '../supervisor/errors.js';
import { Baton, cli, fixture, type LogEvent, statusOf } from './helpers/baton.js';
import { get } from './helpers/load.js';
import { needs } from './helpers/needs.js';
import { ended, fdsOn, pidsFile, readOr, recorded, sleep } from './helpers/procs.js';

const listen = ['--listen', '127.0.0.1:0'];
/** A control request baton does not answer within this (the CLI waits as long) is a stalled baton. */
const ANSWER_MS = 10_000;

/** The process of generation `n`, once status shows it active (a stalled baton fails it: no answer). */
async function active(baton: Baton, n: number): Promise<{ pid: number; port: number }> {
  for (let i = 0; i < 200; i++) {
    const s = await statusOf(baton, ANSWER_MS).catch((err: BatonError) => {
      if (err.code === 'ERR_BATON_NOT_RUNNING') return undefined; // not listening yet
      throw err;
    });
    if (!s) {
      await sleep(50);
      continue;
    }
    const gen = s.generations.find((g) => g.number === n && g.state === 'active');
    if (gen) return { pid: gen.pid, port: Number(s.listeners[0]!.address.split(':').pop()) };
    await sleep(50);
  }
  throw new Error(`generation ${n} not active within 10 s`);
}

/** True once a new connection to `port` is answered by `pid` (the old generation may still take a few). */
async function answers(port: number, pid: number): Promise<boolean> {
  for (let i = 0; i < 50; i++, await sleep(50)) if ((await get(port)).startsWith(`pid=${pid} `)) return true;
  return false;
}

/** A FIFO for baton's stderr that the test reads only when it says so; `fill()` fills it up first. */
function fifo(t: ExecutionContext) {
  const dir = mkdtempSync(join(tmpdir(), 'baton-stall-'));
  const path = join(dir, 'stderr');
  execFileSync('mkfifo', [path]);
  const reader = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const open = new Set([reader, openSync(path, constants.O_WRONLY)]);
  const [, stderr] = [...open] as [number, number];
  const filler = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
  open.add(filler);
  const close = (fd: number) => open.delete(fd) && closeSync(fd);
  const buffer = Buffer.alloc(1 << 16);
  let text = '';
  /** What has arrived since the last read; `undefined` at end of file (every writer gone). */
  const read = (): string | undefined => {
    let got = '';
    for (;;) {
      try {
        const n = readSync(reader, buffer);
        if (n === 0) return got || undefined;
        got += buffer.toString('utf8', 0, n);
      } catch {
        return got; // EAGAIN: nothing more for now
      }
    }
  };
  t.teardown(() => {
    for (const fd of open) close(fd);
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    path,
    /** baton's stderr: pass it, then call spawned() (the test's copy is closed). */
    stderr,
    spawned: () => close(stderr),
    /** Fills the pipe with whole lines of x (each written whole: below PIPE_BUF); returns the bytes. */
    fill(): number {
      const chunk = Buffer.from(`${'x'.repeat(511)}\n`);
      let n = 0;
      try {
        for (;;) n += writeSync(filler, chunk);
      } catch {
        return n; // EAGAIN: full
      }
    },
    /** Reads what is there now; returns all read so far (the filler's lines too). */
    drain(): string {
      text += read() ?? '';
      return text;
    },
    /** Reads until every writer has closed the pipe (within `ms`); returns all read. */
    async eof(ms = 15_000): Promise<string> {
      close(filler);
      for (const end = Date.now() + ms; Date.now() < end; await sleep(20)) {
        const got = read();
        if (got === undefined) return text;
        text += got;
      }
      throw new Error(`the pipe was not closed within ${ms} ms`);
    },
  };
}

/** baton's JSON lines in `text` (the filler's and children's lines left out). */
function events(text: string): LogEvent[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogEvent);
}

/**
 * After the test (also one that failed on a stalled baton): `unblock` reads its stderr again, then
 * SIGTERM, and SIGKILL if it has not exited within 10 s.
 */
function cleanup(t: ExecutionContext, baton: Baton, unblock: () => void): void {
  t.teardown(async () => {
    const reading = setInterval(unblock, 20);
    const exited = await Promise.race([baton.stop(), sleep(10_000)]);
    if (!exited) baton.signal('SIGKILL');
    clearInterval(reading);
  });
}

/** `pid` has exited within `ms`. */
async function exits(pid: number, ms = 10_000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(20)) if (ended(pid)) return true;
  return false;
}

/** A baton serving generation 1, its stderr a FIFO that is full: nobody reads it until the test says so. */
async function stalled(t: ExecutionContext) {
  const pipe = fifo(t);
  const baton = new Baton([...listen, '--', 'node', fixture], {}, [], cli, pipe.stderr);
  pipe.spawned();
  cleanup(t, baton, () => pipe.drain());
  const first = await active(baton, 1);
  t.true(pipe.fill() > 0);
  return { pipe, baton, first };
}

/** `p`'s value, or undefined if it takes longer than `ms`. */
const within = <T>(p: Promise<T>, ms: number) => Promise.race([p, sleep(ms).then(() => undefined)]);

test('a pipe on stderr that nobody reads does not stall baton: it answers, upgrades and stops', async (t) => {
  const { baton, first } = await stalled(t);
  baton.signal('SIGHUP'); // logged at once: the old baton blocked in that write, deaf to all that follows
  const second = await active(baton, 2);
  t.true(await answers(second.port, second.pid), 'generation 2 answers');
  t.true(await exits(first.pid), 'generation 1 drained and exited');
  baton.signal('SIGTERM');
  t.truthy(await within(baton.exited, 10_000), 'baton stopped');
  t.true(ended(second.pid));
});

test('past its buffer baton drops lines, counts them, and says so once the reader catches up', async (t) => {
  const { pipe, baton } = await stalled(t);
  // Each bad request is one line of baton's log (~150 bytes): more than its 1 MiB buffer in all.
  const sent = 10_000;
  let answered = 0;
  for (let i = 0; i < sent; i += 50) {
    const batch = Array.from({ length: 50 }, () => request(baton.control, { command: 'flood' } as never, ANSWER_MS));
    answered += (await Promise.all(batch)).filter((r) => !r.ok).length;
  }
  t.is(answered, sent, 'every request answered while stderr was stalled');
  let seen: LogEvent[] = [];
  for (let i = 0; i < 500 && !seen.some((e) => e.event === 'log-dropped'); i++, await sleep(20)) {
    seen = events(pipe.drain());
  }
  const report = seen.findIndex((e) => e.event === 'log-dropped');
  const logged = seen.filter((e) => e.event === 'control-bad-request');
  t.true(report >= 0, 'the drops are reported');
  const dropped = Number(seen[report]!.lines);
  t.true(dropped > 0);
  t.is(logged.length + dropped, sent, 'every line was written or counted');
  t.true(
    seen.slice(report).every((e) => e.event !== 'control-bad-request'),
    'the report stands where the gap is',
  );
  baton.signal('SIGTERM');
  t.is(events(await pipe.eof()).at(-1)?.event, 'stopped', 'baton logs as before after the report');
});

test("a child that fills baton's stderr blocks in its write; baton does not (stderr a socket)", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-spew-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const pids = pidsFile(t);
  const go = join(dir, 'go');
  // Each generation starts a child that writes to the shared stderr without end, once the test says go.
  const spew = `while [ ! -e ${go} ]; do sleep 0.05; done; exec sh -c 'echo $$ >> ${pids.file}; exec yes spew'`;
  const baton = new Baton([...listen, '--', 'sh', '-c', `(${spew}) >&2 & exec node ${fixture}`]);
  cleanup(t, baton, () => baton.child.stderr!.resume());
  await active(baton, 1);
  baton.child.stderr!.pause(); // Node stops reading the socket once 16 KiB wait
  writeFileSync(go, '');
  const [spewer] = await recorded(pids.file);
  pids.pids.push(spewer!);
  let [wrote, still] = ['', 0];
  for (let i = 0; i < 200 && still < 5; i++, await sleep(100)) {
    const now = /wchar: (\d+)/.exec(readOr(`/proc/${spewer}/io`))?.[1] ?? '';
    [still, wrote] = [now === wrote ? still + 1 : 0, now];
  }
  t.is(still, 5, 'the child is blocked: it has written nothing for 0.5 s');
  baton.signal('SIGHUP');
  const second = await active(baton, 2);
  t.true(await answers(second.port, second.pid), 'generation 2 answers');
  t.false(ended(spewer!), 'the child is still blocked in its write');
  baton.signal('SIGTERM');
  t.truthy(await within(baton.exited, 15_000), 'baton stopped');
  t.true(ended(spewer!) && ended(second.pid), 'and took its children with it');
});

test('a reader that keeps up loses nothing: every line, whole and in order', async (t) => {
  const { pipe, baton } = await stalled(t); // for a while: the upgrade's lines wait in baton's buffer
  baton.signal('SIGHUP');
  await active(baton, 2);
  const reading = setInterval(() => pipe.drain(), 10);
  const sent = 300;
  for (let i = 0; i < sent; i += 30) {
    await Promise.all(Array.from({ length: 30 }, () => request(baton.control, { command: 'x' } as never, ANSWER_MS)));
  }
  baton.signal('SIGTERM');
  const text = await pipe.eof();
  clearInterval(reading);
  const lines = text.split('\n').filter((l) => l && !/^x+$/.test(l));
  const all = events(text);
  t.is(all.length, lines.length, 'every line of baton is whole JSON');
  t.false(all.some((e) => e.event === 'log-dropped'));
  t.is(all.filter((e) => e.event === 'control-bad-request').length, sent);
  const times = all.map((e) => Date.parse(String(e.time)));
  t.deepEqual(
    times,
    [...times].sort((a, b) => a - b),
    'in the order logged',
  );
  const order = ['config', 'active', 'reload', 'spawn', 'active', 'stopping', 'stopped'];
  let at = -1;
  for (const name of order) {
    at = all.findIndex((e, i) => i > at && e.event === name);
    t.true(at >= 0, `${name} in its place`);
  }
});

// Root: it reads baton's /proc/PID/fd (or maps), which belong to root once baton is not dumpable.
needs('root')(
  'a self-upgrade with stderr stalled: the next program counts the lines lost; one fd of its own',
  async (t) => {
    const { pipe, baton } = await stalled(t);
    const onPipe = () => fdsOn(baton.pid, pipe.path);
    t.is(onPipe(), 2, "stderr and baton's own non-blocking description");
    baton.signal('SIGHUP');
    await active(baton, 2); // its lines wait
    baton.signal('SIGUSR2');
    for (let i = 0; i < 400 && !readOr(`/proc/${baton.pid}/environ`).includes('BATON_RESUME='); i++) await sleep(50);
    t.true(readOr(`/proc/${baton.pid}/environ`).includes('BATON_RESUME='), "baton exec'd itself");
    await active(baton, 2); // the next program answers
    t.is(onPipe(), 2, 'the fd of the program before was closed on exec');
    let seen: LogEvent[] = [];
    for (let i = 0; i < 500 && !seen.some((e) => e.event === 'resumed'); i++, await sleep(20))
      seen = events(pipe.drain());
    const report = seen.findIndex((e) => e.event === 'log-dropped');
    t.is(seen[report - 1]?.event, 'active', 'the last line before the stall, then the report');
    t.true(Number(seen[report]?.lines) >= 3, 'the reload, the new generation, the self-upgrade: lost and counted');
    t.true(seen.findIndex((e) => e.event === 'resumed') > report);
  },
);
