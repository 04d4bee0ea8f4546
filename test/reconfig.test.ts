// --config read again at each upgrade (issue 10): the options that shape a generation take effect for the new
// one; an option baton sets up only at its start refuses the upgrade, as does an invalid file; `reload --wait`
// prints what changed. Observed on the processes: their command lines, their cwd, the signals they get and when.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { Baton, ctl, fixture, statusOf } from './helpers/baton.js';
import { gaps, hammer, servedFrom } from './helpers/load.js';
import { exclusive } from './helpers/lock.js';
import { ended, readOr, running, sleep, until } from './helpers/procs.js';

const cmdline = (pid: number) => readOr(`/proc/${pid}/cmdline`).split('\0').filter(Boolean);

/** Writes `options` as the config file at `path`, atomically (a deploy tool renames a new file into place). */
function writeConfig(path: string, options: Record<string, unknown>): void {
  writeFileSync(`${path}.new`, JSON.stringify(options));
  renameSync(`${path}.new`, path);
}

/** The signals the `signals` fixture recorded: [pid, generation, signal, uptime ms] per line. */
function signalsIn(log: string): Array<[number, number, string, number]> {
  return readOr(log)
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [pid, gen, sig, at] = l.split(' ');
      return [Number(pid), Number(gen), sig!, Number(at)];
    });
}

test.serial(
  'a release that carries its own baton.json: the new command, drain and stop signal take effect; flags still win',
  async (t) => {
    const base = mkdtempSync(join(tmpdir(), 'baton-reconfig-'));
    const signalLog = join(base, 'signals.log');
    const listen = ['127.0.0.1:0'];
    for (const r of ['r1', 'r2']) mkdirSync(join(base, r));
    writeConfig(join(base, 'r1', 'baton.json'), { listen, drain: '20s', command: ['node', fixture, 'signals:drain'] });
    writeConfig(join(base, 'r2', 'baton.json'), {
      listen,
      drain: '300ms',
      'stop-signal': 'SIGINT',
      readyTimeout: '1s',
      command: ['node', fixture, 'signals:drain', '1,2,3'],
    });
    symlinkSync('r1', join(base, 'current'));
    const lock = await exclusive();
    // Started from the link with a relative --config, as a unit with WorkingDirectory=/srv/app/current would.
    const fromCurrent = ['sh', '-c', 'cd "$0" && exec "$@"', join(base, 'current')];
    const args = ['--config', 'baton.json', '--ready-timeout', '20s'];
    const b = new Baton(args, { SIGNAL_LOG: signalLog }, fromCurrent);
    let load: ReturnType<typeof hammer> | undefined;
    try {
      const first = await b.event('active', 1);
      t.deepEqual(cmdline(first.pid).slice(-2), [fixture, 'signals:drain']);
      load = hammer({ port: await b.port(), keepAlive: false, concurrency: 2, maxMs: 30_000 });
      const began = performance.now();
      symlinkSync('r2', join(base, 'current.new'));
      renameSync(join(base, 'current.new'), join(base, 'current'));
      const r = await ctl(b, 'reload', '--wait');
      const activeAt = performance.now() - began;
      t.is(r.code, 0, r.stderr);
      const changed = r.stdout.split('\n').filter((l) => l.startsWith('changed: '));
      t.deepEqual(changed.sort(), [
        `changed: --drain from 20000ms to 300ms`,
        `changed: --stop-signal from "SIGTERM" to "SIGINT"`,
        `changed: the command from "node ${fixture} signals:drain" to "node ${fixture} signals:drain 1,2,3"`,
      ]);
      const second = b.events.find((e) => e.event === 'active' && e.generation === 2)!;
      t.deepEqual(cmdline(second.pid).slice(-3), [fixture, 'signals:drain', '1,2,3'], 'the new command runs');
      t.is(readlinkSync(`/proc/${second.pid}/cwd`), join(base, 'r2'));
      // The old generation gets its own stop signal after the new drain (300 ms), not the old one's 20 s.
      const stopped = await until('generation 1 stopped', () => signalsIn(signalLog).find(([, g]) => g === 1), 10_000);
      t.is(stopped[2], 'SIGTERM', 'the old generation is stopped as its own configuration says');
      t.true(performance.now() - began < 10_000, 'the new --drain, not 20 s');
      await until('generation 1 exited', () => b.events.find((e) => e.event === 'exit' && e.generation === 1));
      await sleep(600);
      const result = await load.stop();
      t.deepEqual(gaps(result), []);
      t.deepEqual(servedFrom(result, activeAt + 500), [2]);
      t.is((await statusOf(b)).generations.find((g) => g.number === 2)?.state, 'active');
      t.is((await b.stop()).code, 0);
      t.deepEqual(
        signalsIn(signalLog)
          .filter(([, g]) => g === 2)
          .map(([, , sig]) => sig),
        ['SIGINT'],
        "the new generation is stopped with its configuration's signal",
      );
      t.false(
        b.events.some((e) => e.event === 'failed'),
        '--ready-timeout 20s given as a flag wins over the file: the 1 s of r2 never applied',
      );
    } finally {
      await load?.stop();
      lock();
      await b.stop();
    }
  },
);

test.serial(
  'an option set up only at start, an invalid file or a failed --check refuses the upgrade and changes nothing',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-reconfig-'));
    const file = join(dir, 'baton.json');
    const good = { listen: ['127.0.0.1:0'], drain: '200ms', command: ['node', fixture] };
    writeConfig(file, good);
    const lock = await exclusive();
    const b = new Baton(['--config', file]);
    let load: ReturnType<typeof hammer> | undefined;
    try {
      await b.event('active', 1);
      load = hammer({ port: await b.port(), keepAlive: true, concurrency: 2, maxMs: 30_000 });
      const refused = async (options: unknown, message: RegExp, hint: RegExp) => {
        writeFileSync(file, typeof options === 'string' ? options : JSON.stringify(options));
        const r = await ctl(b, 'reload', '--wait');
        t.is(r.code, 1);
        t.regex(r.stderr, message);
        t.regex(r.stderr, hint);
      };
      await refused(
        { ...good, drain: '1s', handover: 'inherit', backlog: 64 },
        new RegExp(
          '^error: upgrade failed: --config not applied: --backlog, --handover changed, ' +
            'which baton sets up only at its start$',
          'm',
        ),
        new RegExp(
          '^hint: restart baton to change --backlog, --handover, or put back its value to upgrade; ' +
            'generation 1 still serves',
          'm',
        ),
      );
      await refused(
        '{"drain": "1s",',
        /^error: upgrade failed: --config not applied: cannot read --config \S+baton\.json: /m,
        /^hint: give a JSON file whose keys are option names/m,
      );
      await refused(
        { ...good, drain: '1s', draim: '2s' },
        /^error: upgrade failed: --config not applied: unknown option in \S+baton\.json: draim$/m,
        /^hint: config keys are the long option names/m,
      );
      await refused(
        { ...good, drain: 'soon' },
        /^error: upgrade failed: --config not applied: bad duration for --drain: "soon"$/m,
        /^hint: /m,
      );
      await refused(
        { ...good, drain: '1s', check: 'echo not today; exit 3' },
        /^error: upgrade failed: preflight failed \(exit 3\): not today$/m,
        /^hint: generation 1 still serves/m,
      );
      t.false(
        b.events.some((e) => e.event === 'spawn' && e.generation !== 1),
        'nothing was started',
      );
      // What the refused files held was never taken: the next upgrade changes only what differs from the start.
      writeConfig(file, { ...good, surge: 2 });
      const r = await ctl(b, 'reload', '--wait');
      t.is(r.code, 0, r.stderr);
      t.deepEqual(
        r.stdout.split('\n').filter((l) => l.startsWith('changed: ')),
        ['changed: --surge from 1 to 2'],
      );
      t.deepEqual(gaps(await load.stop()), []);
    } finally {
      await load?.stop();
      lock();
      await b.stop();
    }
  },
);

test.serial(
  '--workers from --config: a wave over the new count; a SIGTTIN count stands while the file does not change',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-reconfig-'));
    const file = join(dir, 'baton.json');
    const options = { listen: ['127.0.0.1:0'], drain: '200ms', command: ['node', fixture] };
    writeConfig(file, { ...options, workers: 1 });
    const lock = await exclusive();
    const b = new Baton(['--config', file]);
    let load: ReturnType<typeof hammer> | undefined;
    const workersOf = async (n: number) =>
      (await statusOf(b)).generations.filter((g) => g.number === n && g.state === 'active').map((g) => g.worker);
    try {
      await b.event('active', 1);
      load = hammer({ port: await b.port(), keepAlive: false, concurrency: 2, maxMs: 40_000 });
      writeConfig(file, { ...options, workers: 3 });
      t.is((await ctl(b, 'reload', '--wait')).stdout.split('\n')[1], 'changed: --workers from 1 to 3');
      t.deepEqual((await workersOf(2)).sort(), [0, 1, 2], 'generation 2 runs in three slots');
      writeConfig(file, { ...options, workers: 2 });
      t.is((await ctl(b, 'reload', '--wait')).code, 0);
      t.deepEqual((await workersOf(3)).sort(), [0, 1]);
      await until('generation 2 gone', () =>
        b.events.filter((e) => e.event === 'exit' && e.generation === 2).length === 3 ? true : undefined,
      );
      b.signal('SIGTTIN');
      await b.event('active', 4);
      // The file still says 2: the operator's third worker stays for the next upgrade.
      writeConfig(file, { ...options, workers: 2, drain: '100ms' });
      t.is((await ctl(b, 'reload', '--wait')).code, 0);
      t.deepEqual((await workersOf(5)).sort(), [0, 1, 2]);
      await until('generations 3 and 4 gone', () =>
        b.events.filter((e) => e.event === 'exit' && [3, 4].includes(e.generation!)).length === 3 ? true : undefined,
      );
      await sleep(300);
      const result = await load.stop();
      t.deepEqual(gaps(result), []);
      t.deepEqual(servedFrom(result, result.elapsed - 250), [5]);
    } finally {
      await load?.stop();
      lock();
      await b.stop();
    }
  },
);

test('a --config read under way when baton stops (a FIFO at the path) is killed with it', async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'baton-reconfig-'));
  const file = join(base, 'baton.json');
  writeConfig(file, { listen: ['127.0.0.1:0'], command: ['node', fixture] });
  const b = new Baton(['--config', file]);
  let reader: number | undefined;
  try {
    const first = await b.event('active', 1);
    rmSync(file);
    execFileSync('mkfifo', [file]);
    b.signal('SIGHUP');
    // The read blocks in open(2) until a writer comes: baton's child that is not generation 1 (nor its keeper).
    reader = await until('the options reader', () =>
      running(b.pid).find(
        (pid) => pid !== first.pid && readOr(`/proc/${pid}/environ`).includes('\0BATON_READ_OPTIONS='),
      ),
    );
    const stopAt = performance.now();
    b.signal('SIGTERM');
    await b.exited;
    // Not after the read's own 10 s bound, and not left running.
    t.true(performance.now() - stopAt < 5000, `baton took ${Math.round(performance.now() - stopAt)} ms to stop`);
    t.true(ended(reader), 'the reader outlived baton');
  } finally {
    if (reader !== undefined && !ended(reader)) process.kill(reader, 'SIGKILL');
    await b.stop();
  }
});
