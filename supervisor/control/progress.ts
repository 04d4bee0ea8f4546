import type { Fields, Tap } from '../log.js';
import type { Readings } from '../metrics/readings.js';

/** The events of an upgrade that `reload --wait --progress` shows, as they happen. */
const STEPS = new Set([
  ...['config-changed', 'preflight-failed', 'upgrade-refused', 'spawn', 'grab', 'ready', 'active', 'draining'],
  ...['upgraded', 'failed', 'rollback', 'regained', 'unhealthy', 'stop', 'kill', 'exit', 'self-upgrade'],
]);
/** How often the connections still open in draining processes are counted. */
const COUNT_EVERY_MS = 1000;
/** A client that does not read its progress gets no more of it (the final reply still comes). */
const MAX_UNREAD = 64 * 1024;

/** A step as the client hears it: the event and its fields, or the connections a draining process still has. */
export type Step = { event: string } & Fields;

/** Where steps go: a `reload --wait --progress` client's connection. */
export interface StepSink {
  write(step: Step): void;
  /** Bytes written and not yet taken by the client. */
  unread(): number;
  /** The client went away. */
  gone(): boolean;
}

/**
 * The steps of the upgrade that serves one `reload --wait --progress`, from its start (begin) to the exit of the
 * processes it stopped (drained): spawned, grabbed, ready, active, draining with the connections counting down,
 * stopped. A self-upgrade ends them at its `self-upgrade` step; the next program sends only the outcome.
 */
export class Progress {
  private unlisten?: () => void;
  private timer?: NodeJS.Timeout;
  /** The client's wait is over: an upgrade that begins later (its request was queued) sends it nothing. */
  private ended = false;
  private readonly counted = new Map<number, number>();

  constructor(
    private readonly source: { readings(): Readings; processes(): Readings['processes']; log: Tap },
    private readonly sink: StepSink,
  ) {}

  /** The upgrade starts: its steps go to the client from now on. */
  readonly begin = (): void => {
    if (this.unlisten || this.ended) return;
    this.unlisten = this.source.log.listen((event, fields) => {
      if (STEPS.has(event)) this.send({ event, ...fields });
    });
    this.timer = setInterval(() => this.count(), COUNT_EVERY_MS);
  };

  /** Resolves once the processes being stopped now (draining, or failed) have exited, or after `ms`. */
  async drained(ms: number): Promise<void> {
    const stopping = new Set(
      this.count()
        .filter((p) => p.state === 'draining' || p.state === 'failed')
        .map((p) => p.pid),
    );
    const deadline = performance.now() + ms;
    // Polled often: the process list alone (the connections are counted each second, by the timer).
    const left = () => this.source.processes().some((p) => stopping.has(p.pid));
    while (left() && !this.sink.gone() && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  end(): void {
    this.ended = true;
    this.unlisten?.();
    clearInterval(this.timer);
  }

  /** Sends each draining process's open connections when the count changed; returns the processes. */
  private count(): Readings['processes'] {
    const { processes } = this.source.readings();
    for (const { pid, number, connections } of processes) {
      if (connections === undefined || this.counted.get(pid) === connections) continue;
      this.counted.set(pid, connections);
      this.send({ event: 'connections', generation: number, pid, connections });
    }
    return processes;
  }

  private send(step: Step): void {
    if (this.sink.unread() <= MAX_UNREAD) this.sink.write(step);
  }
}
