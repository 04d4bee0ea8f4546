import { type ChildProcess, spawn } from 'node:child_process';
import { track } from '../children.js';
import { describeExit } from '../exit-status.js';
import type { Listener } from '../listener.js';
import type { Logger } from '../log.js';
import { asUser, type RunAs } from '../run-as.js';
import { nativeFile } from '../sys/native.js';
import { setPtracer, setUndumpable } from '../sys/prctl.js';
import { yamaScope } from '../sys/proc.js';
import { queueSignal } from '../sys/signal.js';
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
  child: ChildProcess;
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
    return this.running?.child.pid ?? 0;
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
      this.running?.child.kill('SIGKILL');
    } catch {
      // gone already
    }
  }

  private start(): Running {
    const fds = this.listeners.map((l) => l.fd);
    const { file, args } = asUser(this.user, this.path, [String(fds.length), String(process.pid)]);
    const child = spawn(file, args, {
      argv0: 'baton-keeper',
      env: {},
      stdio: ['ignore', 'pipe', 'ignore', ...fds],
    });
    const exited = new Promise<void>((resolve) => {
      child.once('close', (code, signal) => {
        if (this.running?.child === child) this.running = undefined;
        if (!this.closing && running.signalsBlocked) {
          const message = `the keeper pid ${child.pid} ${describeExit({ code, signal })}; the next launch starts another`;
          this.log.event('warning', { message });
        }
        resolve();
      });
      // A spawn that failed (no pid) may end without 'close'.
      child.once('error', () => {
        if (child.pid !== undefined) return;
        if (this.running?.child === child) this.running = undefined;
        resolve();
      });
    });
    track(child.pid, exited);
    const ready = new Promise<void>((resolve, reject) => {
      const failed = (why: string) => reject(new Error(`the keeper (${this.path}) ${why}`));
      child.once('error', (err) => failed(`cannot start: ${err.message}`));
      child.stdout!.once('data', () => {
        running.signalsBlocked = true;
        if (this.tracer) this.sendTracer(running);
        resolve();
      });
      void exited.then(() => failed('exited before it held the listeners'));
    });
    const running: Running = { child, ready, signalsBlocked: false, exited };
    return running;
  }

  private sendTracer(running: Running): void {
    if (!running.child.pid) return;
    queueSignal(running.child.pid, 'SIGUSR1', this.tracer);
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
