import { spawnPending, spawnsSettled } from './children.js';
import type { Config } from './config.js';
import { describeExit } from './exit-status.js';
import type { GenerationSocket } from './gen-socket.js';
import { Generation } from './generation.js';
import type { Handover, Session, Source } from './handover/handover.js';
import type { Helpers } from './helpers.js';
import { unheld } from './holding.js';
import type { Listener } from './listener.js';
import type { Logger } from './log.js';
import { NotifySocket } from './notify-socket.js';
import { waitReady } from './ready/index.js';
import type { Release } from './release.js';
import { appEnv, asUser } from './run-as.js';
import { type Clocks, clocks, span } from './steps.js';

const unheldFor = 'ready, but did not take every listener';
/** What a launch's signal aborts with once it ends: given, as the default is an exception with a stack to capture. */
const ENDED = new Error('the launch ended');

/**
 * A ready process, or why there is none. `waited`: the wait for the spawns of the batch's launches before it (the
 * clones and execs of their children); `issued`: when baton's part of the spawn was done (the handover's source
 * and plan, the notify socket, the env and file actions); `exec`: from then until the process existed with its
 * exec done (the clone and exec, off baton's thread); `record`: baton's bookkeeping after that (the spawn line,
 * the handover's watch), done while the child starts; `ready`: when the child said it was ready, before baton checked
 * that it holds its listeners and cleaned up.
 */
export type Launch =
  | {
      gen: Generation;
      waited: Clocks;
      issued: Clocks;
      exec: Clocks;
      record: Clocks;
      ready: Clocks;
      reason?: undefined;
      hint?: undefined;
    }
  | {
      gen?: undefined;
      waited?: undefined;
      issued?: undefined;
      exec?: undefined;
      record?: undefined;
      ready?: undefined;
      reason: string;
      hint?: string;
    };

export interface LaunchContext {
  config: Config;
  log: Logger;
  handover: Handover;
  listeners: Listener[];
  /** Where a pulling generation takes the listeners from. */
  source: Source;
  runtimeDir: string;
  helpers: Helpers;
  stopping(): boolean;
  /** Called as a spawn is issued: a stop waits for it, so that it stops that process too. */
  starting(spawn: Promise<Generation>): void;
  /** Called once the process exists, before it is ready: the supervisor tracks it from then on. */
  spawned(gen: Generation): void;
}

/**
 * Spawns one process of generation `number` of `release` for worker slot `worker` and waits until it is ready,
 * exits, or times out (its --ready and --ready-timeout). A process that does not make it is marked failed and killed.
 */
export async function launch(
  ctx: LaunchContext,
  number: number,
  worker: number,
  release: Release,
  socket?: GenerationSocket,
): Promise<Launch> {
  const { config, log, handover } = ctx;
  const launched = performance.now();
  // Under --steer: the generation's own socket, not baton's listeners.
  const { listeners, source } = socket ? { listeners: [socket.listener], source: socket.source } : ctx;
  const abort = new AbortController();
  socket?.use(new Promise((resolve) => abort.signal.addEventListener('abort', resolve, { once: true })));
  let timer: NodeJS.Timeout | undefined;
  let spawned: Generation | undefined;
  let notify: NotifySocket | undefined;
  let session: Session | undefined;
  try {
    // One spawn at a time: the notify socket's umask must not reach another launch's child (files.ts). Looked at
    // again after every wait (the batch's other launches wake up with this one), and so is the source, which may
    // have died meanwhile; nothing is spawned once a stop began, which waits only for spawns under way.
    const waited = { wall: 0, cpu: 0 };
    for (;;) {
      if (handover.pulls) await source.ready();
      if (!spawnPending()) break;
      const from = clocks();
      await spawnsSettled();
      const d = span(from);
      [waited.wall, waited.cpu] = [waited.wall + d.wall, waited.cpu + d.cpu];
    }
    if (ctx.stopping()) return { reason: 'baton is stopping' };
    const channel = new NotifySocket(ctx.runtimeDir, number, worker, config.user);
    notify = channel;
    const plan = handover.plan(release.command, listeners, source);
    // baton's part of the spawn is done once the clone is handed to a worker thread: the clone and the exec (and
    // the worker's wakeup, which may take baton's core) are the child's start.
    let issued!: Clocks; // set before Generation.spawn returns
    const starting = Generation.spawn(
      number,
      {
        ...plan,
        ...asUser(config.user, plan.file, plan.args, {
          ...appEnv(config.user),
          ...release.env,
          ...plan.env,
          BATON_GENERATION: String(number),
          BATON_WORKER: String(worker),
          NOTIFY_SOCKET: channel.path,
        }),
        release,
      },
      log,
      worker,
      () => (issued = clocks()),
    );
    ctx.starting(starting);
    const gen = await starting;
    const exists = clocks();
    ctx.spawned(gen);
    spawned = gen;
    if (socket) {
      [gen.socket, gen.held] = [socket, socket.hold()];
      socket.use(gen.exited);
    }
    log.event('spawn', {
      generation: number,
      worker,
      pid: gen.pid,
      command: release.command.join(' '),
      cwd: release.dir,
      spawn_ms: Math.round((exists.wall - launched) * 100) / 100,
    });
    session = handover.begin(gen.pid, plan, listeners, abort.signal, source);
    const record = span(exists);
    const grabbed = session.watch?.then((held) => {
      if (held) gen.held = held;
      gen.times.grab = gen.ms();
      log.event('grab', { generation: number, worker, pid: gen.pid, grab: gen.times.grab, port: held?.port });
    });
    const readiness = {
      pid: gen.pid,
      generation: number,
      worker,
      release,
      notify: channel,
      signal: abort.signal,
      helpers: ctx.helpers,
    };
    // Whatever the readiness, a generation serves only once it holds its listeners: where baton sees
    // it take them (pidfd, port), ready waits for that too. `readied`: the readiness itself arrived.
    let readied = false;
    const ready = Promise.all([
      waitReady(release.ready, grabbed ? { ...readiness, grabbed } : readiness).then(() => (readied = true)),
      grabbed,
    ]);
    const raced = await Promise.race([
      ready.then(
        () => (ctx.stopping() ? 'baton is stopping' : undefined),
        (err: Error) => err.message,
      ),
      gen.exited.then((s) => `${describeExit(s)} before ready`),
      new Promise<string>(
        (r) =>
          (timer = setTimeout(
            () => r(`${readied ? unheldFor : 'not ready'} within ${release.readyTimeout}ms`),
            release.readyTimeout,
          )),
      ),
    ]);
    const readyAt = clocks();
    // Ready is not enough: a generation that does not hold its listeners would leave them unanswered. Ready by
    // grab is the grab watch itself, which saw every listener held in this same turn of the loop: no second look.
    const looked = release.ready.kind === 'grab';
    const outcome = raced ?? (looked ? undefined : unheld(gen, listeners, handover.sharesListener));
    if (outcome === undefined) {
      gen.to('ready');
      gen.times.ready = Math.round(readyAt.wall - gen.spawnedAt);
      log.event('ready', { generation: number, worker, pid: gen.pid, grab: gen.times.grab, ready: gen.times.ready });
      return { gen, waited, issued, exec: span(issued, exists), record, ready: readyAt };
    }
    const said = channel.said();
    const reason = said ? `${outcome} (child said: ${said})` : outcome;
    gen.to('failed');
    log.event('failed', { generation: number, worker, pid: gen.pid, message: reason });
    // It may already serve from the shared listener: stopped like an old generation, so what it holds
    // is answered (SIGKILL only after --kill-timeout); the loop does not wait for it.
    void gen.stop();
    const hint = channel.hint();
    return hint ? { reason, hint } : { reason };
  } catch (err) {
    log.event('failed', { generation: number, worker, message: (err as Error).message });
    if (spawned && spawned.state === 'starting') {
      spawned.to('failed');
      await spawned.kill((err as Error).message, 'failed-start');
    }
    return { reason: (err as Error).message };
  } finally {
    clearTimeout(timer);
    abort.abort(ENDED);
    notify?.close();
    session?.end?.();
  }
}
