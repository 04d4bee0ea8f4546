import { writeSync } from 'node:fs';

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
    .map(([k, v]) => `${k}=${typeof v === 'string' && /\s/.test(v) ? JSON.stringify(v) : v}`);
  return [
    `[${new Date().toISOString()} ${own ? 'baton' : `gen=${generation}`} pid=${pid ?? process.pid}] ${event}`,
    message,
    ...kv,
  ]
    .filter(Boolean)
    .join(' ');
}

export function createLogger(format: LogFormat, fd = 2): Logger {
  return {
    event(event, fields = {}) {
      const line =
        format === 'json'
          ? JSON.stringify({ time: new Date().toISOString(), event, pid: process.pid, ...fields })
          : text(event, fields);
      try {
        writeSync(fd, line + '\n');
      } catch {
        // stderr closed: nothing better to do
      }
    },
  };
}
