// The rolling wave's decisions, with the real Slots, Retirement and History and generations that are
// plain records: which process serves each slot afterwards, which ones are stopped, what is counted.
// No process is started: stop and kill only record that they were asked.
import test from 'ava';
import { type Config, defaults } from '../supervisor/config.js';
import type { ExitStatus } from '../supervisor/exit-status.js';
import { Generation } from '../supervisor/generation.js';
import { Health } from '../supervisor/health.js';
import { Helpers } from '../supervisor/helpers.js';
import type { Launch } from '../supervisor/launch.js';
import type { Logger } from '../supervisor/log.js';
import { shapeOf } from '../supervisor/release.js';
import { Retirement } from '../supervisor/retire.js';
import { Slots } from '../supervisor/slots.js';
import { clocks } from '../supervisor/steps.js';
import { monotonicMs, settle, type Trial } from '../supervisor/trial.js';
import { History, type UpgradeResult } from '../supervisor/upgrade.js';
import { refill, rescale, runWave } from '../supervisor/wave.js';
import type { WaveParts } from '../supervisor/wave-parts.js';
import { until } from './helpers/procs.js';

type Event = [string, Record<string, unknown>];

interface World {
  parts: WaveParts;
  events: Event[];
  /** Generation numbers (gen.worker) asked to stop or killed, in order. */
  stopped: string[];
  /** What the launch of (generation, slot) yields: a ready process unless said otherwise. */
  outcome: Map<string, 'fail' | 'dies'>;
  /** Ends the process of (generation, slot), as its exit would. */
  die: Map<string, (s: ExitStatus) => void>;
}

/** A generation that is ready, as launch() leaves it, without a process behind it; `die` ends it. */
function ready(world: World, number: number, worker: number): Generation {
  const gen = Object.create(Generation.prototype) as Generation;
  const pid = 100_000 + number * 10 + worker;
  let end!: (s: ExitStatus) => void;
  const exited = new Promise<ExitStatus>((resolve) => (end = resolve));
  Object.assign(gen, { number, worker, pid, state: 'ready', times: { ready: 5 }, exited });
  // As the supervisor's exit routing does: the process has exited, and its slot (if it had one) lost it.
  world.die.set(`${number}.${worker}`, (s) => {
    gen.status = s;
    if (gen.state === 'active' || gen.state === 'draining') gen.state = 'exited';
    world.parts.slots.lost(gen, `exited with code ${s.code}`);
    end(s);
  });
  const record = (what: string) => () => {
    world.stopped.push(what);
    return Promise.resolve();
  };
  Object.assign(gen, { stop: record(`${number}.${worker}`), kill: record(`${number}.${worker}!`) });
  return gen;
}

function world(workers: number, config: Partial<Config> = {}): World {
  const events: Event[] = [];
  const log: Logger = { event: (name, fields = {}) => void events.push([name, fields]) };
  // A short canary window: the old workers drain through it and are stopped at its end.
  const cfg = { ...defaults, cwd: process.cwd(), envFiles: [], surge: 1, drain: 20, ...config } as Config;
  const slots = new Slots({ count: workers, log, onDue: () => {} });
  const live = new Set<Generation>();
  let next = 1;
  const w: World = {
    events,
    stopped: [],
    outcome: new Map(),
    die: new Map(),
    parts: undefined as unknown as WaveParts,
  };
  const launch = async (number: number, slot: number): Promise<Launch> => {
    const what = w.outcome.get(`${number}.${slot}`);
    if (what === 'fail') return { reason: `generation ${number} exited with code 1` };
    const gen = ready(w, number, slot);
    live.add(gen);
    if (what === 'dies') gen.status = { code: 3, signal: null };
    const none = { wall: 0, cpu: 0 };
    return { gen, waited: none, issued: clocks(), exec: none, record: none, ready: clocks() };
  };
  const retirement = new Retirement(cfg, () => false);
  const history = new History();
  w.parts = {
    config: cfg,
    log,
    slots,
    retirement,
    history,
    helpers: new Helpers(log),
    health: new Health(cfg, new Helpers(log), log, slots),
    live,
    launch,
    nextNumber: () => next++,
    stopping: () => false,
  };
  return w;
}

/** Generation 1 serving in every slot, as runFirst leaves it. */
async function first(w: World): Promise<Generation[]> {
  const gens = await Promise.all(
    Array.from({ length: w.parts.slots.length }, (_, s) =>
      w.parts.launch(1, s, { ...shapeOf(w.parts.config), dir: process.cwd(), env: {} }),
    ),
  );
  w.parts.nextNumber();
  return gens.map((l, slot) => {
    w.parts.slots.activate(l.gen!, slot);
    return l.gen!;
  });
}

const serving = (w: World) => Array.from({ length: w.parts.slots.length }, (_, s) => w.parts.slots.at(s)?.number);

test(
  'a wave replaces every slot; the old workers drain through ' + 'the canary window, then get the stop signal',
  async (t) => {
    const w = world(3);
    const old = await first(w);
    let stoppedInWindow: string[] | undefined;
    const log = w.parts.log.event;
    w.parts.log = {
      event: (name, fields) => {
        if (name === 'upgraded') stoppedInWindow = [...w.stopped];
        log(name, fields);
      },
    };
    const r = await runWave(w.parts);
    t.teardown(() => w.parts.retirement.pause());
    t.like(r, { ok: true, generation: 2, serving: 2, readyMs: 5 });
    t.deepEqual(serving(w), [2, 2, 2]);
    t.deepEqual(
      old.map((g) => g.state),
      ['draining', 'draining', 'draining'],
    );
    t.deepEqual(stoppedInWindow, [], 'nothing is stopped in the window');
    await until('the old workers stopped', () => (w.stopped.length === 3 ? true : undefined));
    t.deepEqual(w.stopped.sort(), ['1.0', '1.1', '1.2']);
    t.deepEqual(w.parts.history.list(), [r]);
    t.is(w.parts.history.failures, 0);
  },
);

test('a self-upgrade carries the canary window: the wave returns its trial, and settle() ends it', async (t) => {
  const w = world(2, { drain: 300 });
  const old = await first(w);
  const carry = new AbortController();
  const wave = runWave(w.parts, carry.signal);
  await until('the wave is in its window', () => (w.events.some(([e]) => e === 'upgraded') ? true : undefined));
  carry.abort();
  const trial = (await wave) as Trial;
  t.like(trial, { number: 2, before: 2, workers: 2, servedBefore: true });
  t.true(trial.endsAt! - trial.began >= 300, 'the window is --drain long');
  t.deepEqual(w.stopped, [], 'nothing is stopped when the window is carried');
  t.deepEqual(w.parts.history.list(), [], 'and nothing recorded yet');
  t.true(trial.endsAt! > monotonicMs(), 'its end stands');
  // What the next program does with it: the window's rest, then the old workers stop.
  t.like(await settle(w.parts, trial), { ok: true, generation: 2 });
  t.true(monotonicMs() >= trial.endsAt!, 'not before the window ended');
  await until('the old workers stopped', () => (w.stopped.length === 2 ? true : undefined));
  t.deepEqual(
    old.map((g) => g.state),
    ['draining', 'draining'],
  );

  // A second wave carried, whose worker 1 dies meanwhile: settle() rolls back to generation 2.
  const again = new AbortController();
  const second = runWave(w.parts, again.signal);
  await until('the second window', () => (w.events.filter(([e]) => e === 'upgraded').length === 2 ? true : undefined));
  again.abort();
  const carried = (await second) as Trial;
  w.die.get('3.1')!({ code: 1, signal: null });
  t.like(await settle(w.parts, carried), { ok: false, generation: 3, rollback: 'canary', serving: 2 });
  t.deepEqual(serving(w), [2, 2]);
  t.is(w.parts.slots.onTrial.size, 0);
  t.teardown(() => w.parts.retirement.pause());
});

test(
  'a worker of the wave that exits in the canary window rolls ' + 'the whole wave back; nothing of it restarts',
  async (t) => {
    const w = world(2, { drain: 60_000 });
    const old = await first(w);
    const wave = runWave(w.parts);
    await until('the wave is done', () => (w.events.some(([e]) => e === 'upgraded') ? true : undefined));
    w.die.get('2.1')!({ code: 1, signal: null });
    const r = (await wave) as UpgradeResult;
    t.like(r, { ok: false, generation: 2, rollback: 'canary', serving: 1 });
    t.regex(r!.reason!, /^generation 2 \(worker 1\) exited with code 1 0\.\d s after it became active$/);
    t.deepEqual(serving(w), [1, 1]);
    t.deepEqual(
      old.map((g) => g.state),
      ['active', 'active'],
    );
    t.deepEqual(w.stopped, ['2.0'], 'the worker still alive is stopped; the old ones are not');
    t.deepEqual(
      w.events.filter(([e]) => e === 'regained' || e === 'rollback').map(([e, f]) => [e, f.worker ?? f.phase]),
      [
        ['regained', 1],
        ['regained', 0],
        ['rollback', 'canary'],
      ],
    );
    t.false(
      w.events.some(([e]) => e === 'restart'),
      'no restart',
    );
    t.false(w.parts.slots.hasDue());
    t.is(w.parts.history.failures, 1);
  },
);

test('a failure in the second batch gives the first slot back to its old worker and stops the new one', async (t) => {
  const w = world(3);
  const old = await first(w);
  w.outcome.set('2.1', 'fail');
  const r = await runWave(w.parts);
  t.like(r, { ok: false, generation: 2, reason: 'generation 2 exited with code 1', serving: 1 });
  t.deepEqual(serving(w), [1, 1, 1]);
  t.deepEqual(
    old.map((g) => g.state),
    ['active', 'active', 'active'],
  );
  t.deepEqual(w.stopped, ['2.0']);
  t.deepEqual(
    w.events.filter(([e]) => e === 'regained' || e === 'rollback').map(([e, f]) => [e, f.worker ?? f.failures]),
    [
      ['regained', 0],
      ['rollback', 1],
    ],
  );
  t.is(w.parts.history.failures, 1);
  t.false(w.parts.slots.hasDue(), 'no slot is left empty');
});

test('a new worker that dies while its batch starts is a failed launch; its ready partner is discarded', async (t) => {
  const w = world(2, { surge: 2 });
  await first(w);
  w.outcome.set('2.1', 'dies');
  const r = await runWave(w.parts);
  t.like(r, { ok: false, generation: 2, reason: 'exited with code 3 right after it was ready' });
  t.deepEqual(serving(w), [1, 1]);
  t.deepEqual(w.stopped, ['2.0']);
  t.deepEqual(
    w.events.filter(([e]) => e === 'failed').map(([, f]) => [f.generation, f.worker, f.message]),
    [[2, 0, 'another worker of the wave failed']],
  );
});

test('an old worker gone by the time the wave fails leaves its slot empty, to be restarted', async (t) => {
  const w = world(2);
  const old = await first(w);
  w.outcome.set('2.1', 'fail');
  const launch = w.parts.launch;
  w.parts.launch = async (number, slot, dir) => {
    if (slot === 1) old[0]!.status = { code: null, signal: 'SIGKILL' };
    return launch(number, slot, dir);
  };
  const r = (await runWave(w.parts)) as UpgradeResult;
  t.teardown(() => w.parts.slots.clearRestarts());
  t.false(r.ok);
  t.deepEqual(serving(w), [undefined, 1]);
  t.deepEqual(w.stopped, ['2.0']);
  const restart = w.events.find(([e]) => e === 'restart');
  t.deepEqual(restart, [
    'restart',
    { worker: 0, message: 'its old worker was gone when the wave failed', in: 1000, crashes: 1 },
  ]);
});

test('a crash refill that finds its slot taken meanwhile stops the new process', async (t) => {
  const w = world(1);
  await first(w);
  await refill(w.parts, 0);
  t.deepEqual(serving(w), [1]);
  t.deepEqual(w.stopped, ['2.0']);
  t.deepEqual(w.events.at(-1), [
    'failed',
    { generation: 2, worker: 0, pid: 100_020, message: 'the slot is no longer empty' },
  ]);
});

test('--max-draining: after a second wave with a cap of 1, the older retirement is killed', async (t) => {
  const w = world(2, { maxDraining: 1 });
  await first(w);
  t.teardown(() => w.parts.retirement.pause());
  await runWave(w.parts);
  t.false(
    w.stopped.some((s) => s.endsWith('!')),
    'one retirement: nothing killed',
  );
  await runWave(w.parts);
  t.deepEqual(
    w.stopped.filter((s) => s.endsWith('!')),
    ['1.0!', '1.1!'],
    'the oldest retirement is killed',
  );
  t.deepEqual(serving(w), [3, 3]);
});

// F6: SIGTTIN had no cap (20 of them gave 21 workers; a storm, as many as the host could fork).
test('SIGTTIN beyond 1024 workers logs a warning and starts nothing', async (t) => {
  const w = world(1024);
  await first(w);
  rescale(w.parts, 1025);
  t.is(w.parts.slots.length, 1024);
  t.false(w.parts.slots.hasDue(), 'no slot is due for a start');
  const warning = "SIGTTIN beyond 1024 workers ignored: that is the most (nginx's limit too)";
  t.deepEqual(w.events.at(-1), ['warning', { message: warning, workers: 1024 }]);
  t.false(
    w.events.some(([e]) => e === 'scale'),
    'no scale event: nothing changed',
  );
});

test('SIGTTINs that coalesce past the cap grow the workers to 1024, not beyond', async (t) => {
  const w = world(1022);
  await first(w);
  rescale(w.parts, 1030);
  t.is(w.parts.slots.length, 1024);
  t.deepEqual(
    w.events.filter(([e]) => e === 'warning' || e === 'scale').map(([e, f]) => [e, f.workers]),
    [
      ['warning', 1022],
      ['scale', 1024],
    ],
  );
  t.is(w.parts.slots.takeDue().length, 2, 'the two new slots are due for a start');
});

test('--workers from a changed --config: a failed wave leaves the count; a good one grows or shrinks it', async (t) => {
  const w = world(2, { workers: 2 });
  const old = await first(w);
  t.teardown(() => w.parts.retirement.pause());
  w.parts.reread = async () => ({ ...w.parts.config, workers: 3 });
  w.outcome.set('2.2', 'fail');
  t.like(await runWave(w.parts), { ok: false, generation: 2, changes: ['--workers from 2 to 3'] });
  t.deepEqual(serving(w), [1, 1], 'the slot the wave added is gone');
  t.deepEqual(w.stopped, ['2.1', '2.0']);
  t.false(
    w.events.some(([e]) => e === 'restart'),
    'nothing restarts in it',
  );
  t.false(w.parts.slots.hasDue());
  t.is(w.parts.config.workers, 2, 'the failed wave changed no option');
  t.like(await runWave(w.parts), { ok: true, generation: 3, changes: ['--workers from 2 to 3'] });
  t.deepEqual(serving(w), [3, 3, 3]);
  t.deepEqual(
    old.map((g) => g.state),
    ['draining', 'draining'],
  );
  w.parts.reread = async () => ({ ...w.parts.config, workers: 1 });
  t.like(await runWave(w.parts), { ok: true, generation: 4, changes: ['--workers from 3 to 1'] });
  t.deepEqual(serving(w), [4]);
  t.deepEqual(
    [...w.parts.live].filter((g) => g.number === 3).map((g) => g.state),
    ['draining', 'draining', 'draining'],
    'the removed slots drain with the one replaced',
  );
  t.is(w.parts.config.workers, 1);
});
