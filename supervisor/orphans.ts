import { setTimeout as sleep } from 'node:timers/promises';
import { queueEmptied } from './accept-queue.js';
import type { Logger } from './log.js';
import { closeFd } from './sys/fd.js';
import { alive } from './sys/proc.js';
import { signalGroup } from './sys/process.js';

const POLL_MS = 10;

/** A generation left serving by a baton that died: not baton's child, so watched through /proc. */
export interface Orphan {
  number: number;
  worker: number;
  pid: number;
  starttime: string;
  startedAt: number;
  /** Its NOTIFY_SOCKET (shared-socket mode), which the run record keeps to know it again. */
  notify?: string;
  /** Port mode: baton's copy of the orphan's own listener, whose queue must be empty before the stop signal. */
  held?: number;
}

export interface OrphanTimings {
  drain: number;
  killTimeout: number;
  stopSignal: NodeJS.Signals;
}

/**
 * The orphans a baton took over. Once its own first generation is active they are retired the way an
 * old generation is: --drain, the stop signal to the process group, SIGKILL after --kill-timeout. Until
 * then they are left alone: if this baton cannot start, they serve on for the next one.
 */
export class Orphans {
  private readonly left: Set<Orphan>;
  private retiring?: Promise<void>;
  private readonly hurry = new AbortController();

  constructor(
    list: Orphan[],
    private readonly t: OrphanTimings,
    private readonly log: Logger,
  ) {
    this.left = new Set(list);
  }

  /** The orphans not yet gone. */
  get remaining(): Orphan[] {
    for (const o of this.left) if (!alive(o.pid, o.starttime)) this.left.delete(o);
    return [...this.left];
  }

  /** Whether retire() has been called: from then on they are this baton's to stop. */
  get retired(): boolean {
    return this.retiring !== undefined;
  }

  /** Retires every orphan; resolves once all are gone (or given up on, with a warning). */
  retire(): Promise<void> {
    const warn = (err: Error) => this.log.event('warning', { message: `retiring orphans: ${err.message}` });
    this.retiring ??= Promise.all([...this.left].map((o) => this.one(o))).then(() => undefined, warn);
    return this.retiring;
  }

  /** baton is stopping: orphans being retired skip the rest of their drain. Others are left serving. */
  async stop(): Promise<void> {
    if (!this.retiring) return;
    this.hurry.abort();
    await this.retiring;
  }

  private async one(o: Orphan): Promise<void> {
    const { drain, killTimeout, stopSignal } = this.t;
    const { signal } = this.hurry;
    try {
      await sleep(drain, undefined, { signal });
      if (o.held !== undefined) await queueEmptied(o.held, killTimeout, () => !signal.aborted);
    } catch {
      // baton is stopping: no more drain
    }
    if (alive(o.pid, o.starttime)) {
      const stop = { generation: o.number, pid: o.pid, signal: stopSignal, message: 'retiring the orphan' };
      this.log.event('stop', stop);
      signalGroup(o.pid, stopSignal);
      const deadline = performance.now() + killTimeout;
      while (alive(o.pid, o.starttime) && performance.now() < deadline) await sleep(POLL_MS);
      if (alive(o.pid, o.starttime)) {
        const message = `orphan did not exit within ${killTimeout}ms`;
        this.log.event('kill', { generation: o.number, pid: o.pid, message });
        signalGroup(o.pid, 'SIGKILL');
      }
    }
    this.left.delete(o);
    if (o.held !== undefined) closeFd(o.held);
    this.log.event('exit', { generation: o.number, pid: o.pid, message: 'orphan retired' });
  }
}
