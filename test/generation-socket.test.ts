// A socket of its own for each generation under --steer (issue 15): the steering slot is switched to the new
// generation's socket once it is active, and the old one is stopped only once its own queue is empty, so a
// server that exits at once on SIGTERM loses nothing. Real BPF in a fresh network namespace per test; the
// load runs inside it against the steered address.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import test, { type ExecutionContext } from 'ava';
import { alive, childrenOf, ctl, fixture, keepersOf, statusOf } from './helpers/baton.js';
import { gaps } from './helpers/load.js';
import { needs } from './helpers/needs.js';
import { allEnded, envVar, socketsOf, until } from './helpers/procs.js';
import { answered, exitOf, inWorld, pidsOf, type SteerWorld, servesOnly } from './helpers/steer.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const steer = ['--steer', '127.0.0.1:80'];

/**
 * 10 upgrades under load: not one request fails and nothing stalls; every generation answers in turn (new
 * connections); every process of generations 1-10 exits; then generation 11 alone serves, from its own socket.
 */
async function zeroLoss(t: ExecutionContext, args: string[], mode: string, keepAlive: boolean, workers: number) {
  await inWorld(true, async (w) => {
    const command = ['--workers', String(workers), '--drain', '300ms', '--', 'node', fixture, mode];
    const baton = w.baton([...steer, ...args, ...command]);
    await baton.waitFor((e) => e.event === 'active' && e.generation === 1 && e.worker === workers - 1);
    const load = await w.run({ port: 80, keepAlive, concurrency: 4, maxMs: 120_000, maxRequests: 2_000_000 });
    for (let n = 2; n <= 11; n++) {
      baton.signal('SIGHUP');
      await baton.event('upgraded', n, 30_000);
    }
    for (const pid of pidsOf(baton, 1, 10)) await exitOf(pid, 20_000);
    const r = await load.stop();
    t.is(r.failed, 0, `failed requests: ${JSON.stringify(r.failures)}`);
    t.deepEqual(gaps(r), []);
    t.true(r.ok > 200, `${r.ok} requests`);
    if (!keepAlive) t.deepEqual(answered(r), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 'every generation in turn');
    t.deepEqual(childrenOf(baton.pid).sort(), pidsOf(baton, 11, 11).sort(), "baton's children are generation 11's");
    const sockets = new Set((await statusOf(baton)).generations.map((g) => g.socket?.address));
    t.is(sockets.size, 1, 'its workers share one socket');
    t.regex(String([...sockets][0]), /^127\.0\.0\.1:\d+$/);
    await servesOnly(t, w, 80, keepAlive, 11);
    t.is((await baton.stop()).code, 0);
  });
}

for (const handover of ['pidfd', 'inherit']) {
  const args = handover === 'inherit' ? ['--handover', 'inherit', '--ready', 'notify'] : [];
  for (const workers of [1, 2]) {
    needs('bpf').serial(
      `--handover ${handover}, ${workers} worker(s): a server that exits at once on SIGTERM, 10 upgrades: 0 failed`,
      (t) => zeroLoss(t, args, 'exit-on-term', false, workers),
    );
  }
}

needs('bpf').serial('keep-alive, the helper server (it drains on SIGTERM), 10 upgrades: 0 failed', (t) =>
  zeroLoss(t, [], 'good', true, 1),
);

needs('bpf').serial(
  'a rollback in the canary window switches the slot back before the new generation is stopped: 0 failed',
  (t) =>
    inWorld(true, async (w) => {
      const sick = join(mkdtempSync(join(tmpdir(), 'baton-gensock-')), 'sick');
      const health = [
        '--health',
        `probe:[ "$BATON_GENERATION" != 2 ] || [ ! -e ${sick} ]`,
        '--health-interval',
        '200ms',
      ];
      const baton = w.baton([...steer, '--drain', '5s', ...health, '--', 'node', fixture, 'exit-on-term']);
      const first = await baton.event('active', 1);
      const load = await w.hammer(80, false);
      baton.signal('SIGHUP');
      await baton.event('upgraded', 2);
      await sleep(500); // generation 2 serves from its own socket in the slot
      writeFileSync(sick, '');
      t.is((await baton.event('rollback', 2)).phase, 'canary');
      const second = baton.events.find((e) => e.event === 'spawn' && e.generation === 2)!;
      await exitOf(second.pid, 20_000);
      await sleep(300);
      const r = await load.stop();
      t.is(r.failed, 0, JSON.stringify(r.failures));
      t.deepEqual(gaps(r), []);
      t.deepEqual(answered(r), [1, 2], 'generation 2 served in its window');
      await servesOnly(t, w, 80, false, 1);
      t.true(alive(first.pid), 'generation 1 never stopped');
    }),
);

/**
 * A request begun on `port` inside `w`'s namespace: the headers' first line is sent at once, the rest when
 * `finish` is called; resolves with what came back, or the error.
 */
async function halfSent(w: SteerWorld, port: number) {
  const script =
    `const s = require('node:net').connect(${port}, '127.0.0.1', () => { s.write('GET / HTTP/1.1\\r\\n'); ` +
    "console.log('sent'); }); let got = ''; s.on('data', (d) => (got += d)); " +
    "s.on('error', (e) => (got += 'error ' + e.code)); s.on('close', () => console.log(JSON.stringify(got))); " +
    "process.stdin.once('data', () => s.write('Host: x\\r\\nConnection: close\\r\\n\\r\\n'));";
  const [command, ...args] = w.inside(process.execPath, '-e', script);
  const c = spawn(command!, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: c.stdout! })[Symbol.asyncIterator]();
  const first = await lines.next();
  if (first.value !== 'sent') throw new Error(`the client said ${String(first.value)}`);
  return {
    finish: async () => {
      c.stdin!.end('go\n');
      return JSON.parse(String((await lines.next()).value)) as string;
    },
  };
}

needs('bpf').serial(
  'a generation rolled back in its window answers the request it holds before its stop signal; it is stopped ' +
    'once it holds no connection, not at the end of --drain',
  (t) =>
    inWorld(true, async (w) => {
      const sick = join(mkdtempSync(join(tmpdir(), 'baton-gensock-')), 'sick');
      const probe = `probe:[ "$BATON_GENERATION" != 2 ] || [ ! -e ${sick} ]`;
      const health = ['--health', probe, '--health-interval', '100ms'];
      const baton = w.baton([...steer, '--drain', '20s', ...health, '--', 'node', fixture, 'exit-on-term']);
      await baton.event('active', 1);
      baton.signal('SIGHUP');
      const second = await baton.event('active', 2);
      await baton.event('upgraded', 2);
      const request = await halfSent(w, 80);
      writeFileSync(sick, '');
      await baton.event('rollback', 2);
      await sleep(500); // a stop signal at the rollback would have ended generation 2 by now
      t.true(alive(second.pid), 'generation 2 runs on while it holds the request');
      t.regex(await request.finish(), new RegExp(`^HTTP/1\\.1 200 OK[^]*pid=${second.pid} generation=2 `));
      await exitOf(second.pid, 5000); // once it holds no connection, not after the 20 s drain
      await servesOnly(t, w, 80, false, 1);
      t.is((await baton.stop()).code, 0);
    }),
);

needs('bpf').serial(
  'a crash leaves its socket in the slot: connections wait in its queue, none refused; the restart serves it',
  (t) =>
    inWorld(true, async (w) => {
      // Generation 1 exits 1.5 s after it is ready; its restart comes after the 1 s backoff.
      const baton = w.baton([...steer, '--', 'node', fixture, 'crash:1500', '1']);
      await baton.event('active', 1);
      const before = (await statusOf(baton)).generations[0]!.socket!;
      const load = await w.hammer(80, false);
      const restart = await baton.event('active', 2, 15_000);
      await sleep(500);
      const r = await load.stop();
      t.falsy(r.failures.ECONNREFUSED, `nothing refused: ${JSON.stringify(r.failures)}`);
      t.log('requests in flight on the process that crashed:', r.failures);
      t.deepEqual(answered(r), [1, 2]);
      const after = (await statusOf(baton)).generations.find((g) => g.pid === restart.pid)!;
      t.is(after.socket?.address, before.address, 'the restart serves from the socket that stayed in the slot');
      const text = (await ctl(baton, 'status')).stdout;
      t.regex(text, new RegExp(`socket ${before.address.replaceAll('.', '\\.')}, \\d+ waiting in its accept queue`));
      t.is((await baton.stop()).code, 0);
    }),
);

needs('bpf').serial(
  "the next generation's socket and its keeper are made ahead: generation 2 pulls from a keeper that ran before " +
    'the SIGHUP; none is left after a stop',
  (t) =>
    inWorld(true, async (w) => {
      const baton = w.baton([...steer, '--drain', '200ms', '--', 'node', fixture, 'good']);
      const first = await baton.event('active', 1);
      const ahead = async (serving: number) => {
        const kept = await until('a keeper beside the serving one', () => {
          const others = keepersOf(baton.pid).filter((k) => k !== serving);
          return others.length === 1 ? others[0] : undefined;
        });
        t.is(socketsOf(kept).length, 1, 'it holds one socket');
        return kept;
      };
      const spare = await ahead(Number(envVar(first.pid, '_PID')));
      const seen = [...keepersOf(baton.pid)];
      baton.signal('SIGHUP');
      const second = await baton.event('active', 2);
      t.is(envVar(second.pid, '_PID'), String(spare), 'generation 2 pulls from the keeper made ahead');
      t.true(socketsOf(second.pid).includes(socketsOf(spare)[0]!), "it serves from that keeper's socket");
      await exitOf(first.pid, 20_000);
      seen.push(await ahead(spare));
      await servesOnly(t, w, 80, false, 2);
      t.is((await baton.stop()).code, 0);
      await until('every keeper gone', allEnded(seen));
      t.pass();
    }),
);

test('--listen under --steer: port 0, one, TCP; --shared-socket keeps one socket on a fixed port', async (t) => {
  const { parseOptions } = await import('../supervisor/cli/argv.js');
  const parse = (...args: string[]) => parseOptions([...args, '--', 'true']);
  t.like(parse(...steer)!.listen[0]!.address, { host: '127.0.0.1', port: 0 });
  t.like(parse('--steer', '[::1]:80')!.listen[0]!.address, { host: '::1', port: 0 });
  t.like(parse('--steer', ':80')!.listen[0]!.address, { host: '::', port: 0, v6only: false });
  t.like(parse(...steer, '--listen', '10.0.0.1:0')!.listen[0]!.address, { host: '10.0.0.1', port: 0 });
  t.like(parse(...steer, '--shared-socket', '--listen', '127.0.0.1:8080')!, { sharedSocket: true });
  const refused = (args: string[], message: RegExp) => {
    const err = t.throws(() => parse(...steer, ...args));
    t.regex(err!.message, message);
    t.regex((err as { hint?: string }).hint ?? '', /--listen HOST:0 .* or --shared-socket/);
  };
  refused(['--listen', '127.0.0.1:8080'], /^--listen 127\.0\.0\.1:8080: with --steer each generation gets a socket/);
  refused(['--listen', 'unix:/tmp/x.sock'], /^--listen unix:\/tmp\/x\.sock: with --steer each generation/);
  refused(['--listen', '127.0.0.1:0', '--listen', '127.0.0.2:0'], /^--listen is given 2 times/);
});
