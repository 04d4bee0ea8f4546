import type { LogSink } from './sys/log-sink.js';

/**
 * What waits for a reader that is behind, at most: thousands of lines (an upgrade logs about ten), so a
 * paused terminal or a log driver's hiccup loses nothing, and little memory next to Node's own.
 */
const QUEUE_MAX = 1024 * 1024;
/** How often waiting lines are tried again. */
const RETRY_MS = 20;

const pause = new Int32Array(new SharedArrayBuffer(4));

/** A line not written yet; a report stands for the lines it counts. */
interface Waiting {
  data: Buffer;
  lines: number;
}

/**
 * baton's log lines to a sink that never blocks: whole lines, in order, one write each (a pipe takes up
 * to 4 KiB whole, so a child's output never lands inside one). While the reader is behind, lines wait,
 * tried again every RETRY_MS; past QUEUE_MAX they are dropped and counted until all that waited is
 * written, then `report(count)` is written where the gap is.
 */
export class LogWriter {
  private readonly queue: Waiting[] = [];
  private bytes = 0;
  private timer: NodeJS.Timeout | undefined;

  /** `dropped`: lines lost before this writer (by the program a self-upgrade replaced). */
  constructor(
    private readonly sink: LogSink,
    private readonly report: (dropped: number) => string,
    private dropped = 0,
  ) {
    this.pump();
  }

  write(line: string): void {
    const data = Buffer.from(line);
    if (this.dropped > 0 || this.bytes + data.length > QUEUE_MAX) this.dropped++;
    else this.add(data, 1);
    this.pump();
  }

  /** Tries for up to `ms` (blocking) to write what waits; returns how many lines are still not written. */
  flush(ms: number): number {
    const end = performance.now() + ms;
    this.pump();
    while (this.queue.length && performance.now() < end) {
      Atomics.wait(pause, 0, 0, RETRY_MS);
      this.pump();
    }
    return this.queue.reduce((n, w) => n + w.lines, this.dropped);
  }

  private add(data: Buffer, lines: number): void {
    this.queue.push({ data, lines });
    this.bytes += data.length;
  }

  private pump(): void {
    for (;;) {
      if (!this.queue.length && this.dropped) {
        this.add(Buffer.from(this.report(this.dropped)), this.dropped);
        this.dropped = 0;
      }
      const head = this.queue[0];
      if (!head) return;
      let n: number;
      try {
        n = this.sink(head.data);
      } catch {
        // the destination is gone (EPIPE, EBADF): nothing better to do than forget what waits
        this.queue.length = this.bytes = this.dropped = 0;
        return;
      }
      this.bytes -= n;
      if (n < head.data.length) {
        head.data = head.data.subarray(n);
        this.timer ??= setTimeout(() => {
          this.timer = undefined;
          this.pump();
        }, RETRY_MS).unref();
        return;
      }
      this.queue.shift();
    }
  }
}
