import { Socket } from 'node:net';
import { track } from '../children.js';
import { describeExit, type ExitStatus } from '../exit-status.js';
import { watchExit } from '../exits.js';
import type { Listener } from '../listener.js';
import type { Logger } from '../log.js';
import { asUser, type RunAs } from '../run-as.js';
import { closeFd, pipe } from '../sys/fd.js';
import { nativeFile } from '../sys/native.js';
import { setPtracer, setUndumpable } from '../sys/prctl.js';
import { yamaScope } from '../sys/proc.js';
import { queueSignal } from '../sys/signal.js';
import { spawnProcess } from '../sys/spawn.js';
import type { Source } from './handover.js';

/** native/keeper.c built for this machine; undefined on architectures without one. */
export const keeperPath = (): string | undefined => nativeFile('keeper');

/**
 * Where generations pull from where there is no keeper: baton itself, which then stays dumpable
 * and so exposes every fd it has to a generation with ptrace rights over it (docs/security.md).
 */
export function selfSource(listeners: Listener[], yama: boolean): Source {
  const nameTracer = (pid: number) => {
    if (yama) setPtracer(pid);
  };
  return { pid: process.pid, fds: listeners.map((l) => l.fd), ready: () => Promise.resolve(), nameTracer };
}

interface Running {
  /** 0: it could not be spawned. */
  pid: number;
  ready: Promise<void>;
  /** It wrote its byte: its signals are blocked, so a tracer name no longer kills it. */
  signalsBlocked: boolean;
  exited: Promise<void>;
}

/**
 * The keeper (native/keeper.c): a process that holds the listeners at fds 3.. and nothing else, the
 * `_PID` of every pidfd generation. Started by the first launch that needs it and again by the next
 * launch after it was lost (it dies with baton, or someone killed it); baton kills it at its stop
 * and before a self-upgrade's exec.
 */
export class Keeper implements Source {
  private running?: Running;
  private tracer = 0;
  private closing = false;

  constructor(
    private readonly path: string,
    private readonly listeners: Listener[],
    private readonly log: Logger,
    /** --user: the keeper runs as the user, so that its generations, as the user too, may pull from it. */
    private readonly user: RunAs | undefined,
    /** Yama scope 1: tracers are named (elsewhere nameTracer does nothing). */
    private readonly yama: boolean,
  ) {}

  get pid(): number {
    return this.running?.pid ?? 0;
  }

  get fds(): number[] {
    return this.listeners.map((_, i) => 3 + i);
  }

  ready(): Promise<void> {
    this.running ??= this.start();
    return this.running.ready;
  }

  nameTracer(pid: number): void {
    if (!this.yama) return;
    this.tracer = pid;
    if (this.running?.signalsBlocked) this.sendTracer(this.running);
  }

  /** SIGKILL, and its exit. */
  async close(): Promise<void> {
    const running = this.running;
    if (!running) return;
    this.kill();
    await running.exited;
    this.closing = false;
  }

  /** SIGKILL, for an exit that cannot wait (it would die with baton anyway). */
  kill(): void {
    this.closing = true;
    try {
      if (this.running?.pid) process.kill(this.running.pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }

  private start(): Running {
    const fds = this.listeners.map((l) => l.fd);
    const { file, args } = asUser(this.user, this.path, [String(fds.length), String(process.pid)], {});
    // It writes one byte to its stdout once it holds the listeners with its signals blocked.
    const [out, into] = pipe();
    let pid = 0;
    let cannot: string | undefined;
    try {
      pid = spawnProcess(file, ['baton-keeper', ...args], {
        cwd: '/',
        env: [],
        stdio: ['ignore', into, 'ignore', ...fds],
      });
    } catch (err) {
      cannot = (err as Error).message;
    } finally {
      closeFd(into);
    }
    const reader = new Socket({ fd: out, readable: true, writable: false });
    const exited = new Promise<void>((resolve) => {
      const gone = (status?: ExitStatus) => {
        reader.destroy();
        if (this.running === running) this.running = undefined;
        if (status && !this.closing && running.signalsBlocked) {
          const message = `the keeper pid ${pid} ${describeExit(status)}; the next launch starts another`;
          this.log.event('warning', { message });
        }
        resolve();
      };
      if (pid) watchExit(pid, gone);
      else queueMicrotask(() => gone());
    });
    track(pid || undefined, exited);
    const ready = new Promise<void>((resolve, reject) => {
      const failed = (why: string) => reject(new Error(`the keeper (${this.path}) ${why}`));
      if (cannot) failed(`cannot start: ${cannot}`);
      reader.once('data', () => {
        reader.destroy();
        running.signalsBlocked = true;
        if (this.tracer) this.sendTracer(running);
        resolve();
      });
      void exited.then(() => failed('exited before it held the listeners'));
    });
    const running: Running = { pid, ready, signalsBlocked: false, exited };
    return running;
  }

  private sendTracer(running: Running): void {
    if (!running.pid) return;
    queueSignal(running.pid, 'SIGUSR1', this.tracer);
  }
}

/**
 * What generations pull from: a keeper where the handover pulls and there is one, else baton itself.
 * baton is made undumpable unless it is that source.
 */
export function openSource(
  pulls: boolean,
  listeners: Listener[],
  log: Logger,
  user: RunAs | undefined,
): { source: Source; keeper?: Keeper } {
  const [path, yama] = [keeperPath(), yamaScope() === 1];
  if (pulls && !path) {
    const message = `no keeper for ${process.arch}: generations pull from baton itself, which stays dumpable`;
    log.event('warning', { message });
    return { source: selfSource(listeners, yama) };
  }
  setUndumpable();
  const keeper = pulls ? new Keeper(path!, listeners, log, user, yama) : undefined;
  return { source: keeper ?? selfSource(listeners, yama), keeper };
}
