import { LogWriter } from './log-writer.js';
import { printable } from './printable.js';
import { logSink } from './sys/log-sink.js';

export type LogFormat = 'text' | 'json';
export type Fields = Record<string, string | number | boolean | undefined>;

export interface Logger {
  /** One line per event: time, generation, pid, event, then the fields (durations in ms). */
  event(event: string, fields?: Fields): void;
}

function text(event: string, f: Fields): string {
  const { generation, pid, message, ...rest } = f;
  // `gen=N pid=P` is one process of generation N; a line about a whole generation (upgraded, rollback) is baton's.
  const own = generation === undefined || pid === undefined;
  const kv = Object.entries(own ? { generation, ...rest } : rest)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? printable(/\s/.test(v) ? JSON.stringify(v) : v) : v}`);
  return [
    `[${new Date().toISOString()} ${own ? 'baton' : `gen=${generation}`} pid=${pid ?? process.pid}] ${event}`,
    message === undefined ? undefined : printable(String(message)),
    ...kv,
  ]
    .filter(Boolean)
    .join(' ');
}

/** baton's own logger: its writes never block (log-writer.ts); flush() before it ends. */
export interface BatonLogger extends Logger {
  /** Tries for up to `ms` (blocking) to write the lines still waiting; returns how many are not written. */
  flush(ms: number): number;
}

/** A logger to `fd`; `dropped`: lines the program before a self-upgrade could not write, reported first. */
export function createLogger(format: LogFormat, fd = 2, dropped = 0): BatonLogger {
  const line = (event: string, fields: Fields) =>
    (format === 'json'
      ? JSON.stringify({ time: new Date().toISOString(), event, pid: process.pid, ...fields })
      : text(event, fields)) + '\n';
  const sink = logSink(fd);
  const report = (lines: number) =>
    line('log-dropped', { message: `${lines} line(s) dropped: stderr's reader was behind`, lines });
  const writer = new LogWriter(sink.write, report, dropped);
  const log: BatonLogger = {
    event: (event, fields = {}) => writer.write(line(event, fields)),
    flush: (ms) => writer.flush(ms),
  };
  if (sink.blocking) log.event('warning', { message: sink.blocking });
  return log;
}

export type EventListener = (event: string, fields: Fields) => void;

/**
 * baton's logger, whose events are also heard inside baton (metrics, `reload --wait --progress`) once written. A
 * listener's bug is reported as a warning, never thrown into the code that logged.
 */
export class Tap implements BatonLogger {
  private readonly listeners = new Set<EventListener>();

  constructor(private readonly log: BatonLogger) {}

  event(event: string, fields: Fields = {}): void {
    this.log.event(event, fields);
    for (const listener of this.listeners) {
      try {
        listener(event, fields);
      } catch (err) {
        this.log.event('warning', { message: `listener of ${event}: ${(err as Error).message}` });
      }
    }
  }

  flush(ms: number): number {
    return this.log.flush(ms);
  }

  /** Hears every event from now on; returns what stops it. */
  listen(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
