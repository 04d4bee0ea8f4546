import { constants, fstatSync, openSync, writeSync } from 'node:fs';
import { isatty } from 'node:tty';
import { sendNow } from './socket.js';

/**
 * Writes a chunk of baton's log: the bytes taken, 0 while the reader is behind; throws once the destination is gone.
 */
export type LogSink = (chunk: Buffer) => number;

/**
 * A way to write to `fd`'s destination that never blocks baton, leaving `fd` as it is: its open file
 * description is shared with the children, which would get EAGAIN if it were made non-blocking (and
 * libuv makes it blocking again at each spawn). `blocking` says why writes may block after all.
 * - a pipe or a terminal: opened again through /proc, a description of baton's own (non-blocking,
 *   close-on-exec: Node opens every file so);
 * - a socket (journald, a log driver; /proc cannot open one): send() with MSG_DONTWAIT each time;
 * - a file, /dev/null: written as before (nobody has to read it; opened again, it would have an offset of its own).
 */
export function logSink(fd: number): { write: LogSink; blocking?: string } {
  const plain = (chunk: Buffer) => writeSync(fd, chunk);
  let stat: ReturnType<typeof fstatSync>;
  try {
    stat = fstatSync(fd);
  } catch {
    return { write: plain }; // not open: every write fails at once
  }
  if (stat.isSocket()) return { write: (chunk) => sendNow(fd, chunk) };
  if (!stat.isFIFO() && !isatty(fd)) return { write: plain };
  let own: number;
  try {
    own = openSync(`/proc/self/fd/${fd}`, constants.O_WRONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // ENXIO: a pipe nobody reads any more; a write fails (EPIPE) rather than waits.
    if (code === 'ENXIO') return { write: plain };
    return {
      write: plain,
      blocking: `cannot open /proc/self/fd/${fd} (${code}): log writes block while stderr's reader is behind`,
    };
  }
  const write = (chunk: Buffer) => {
    try {
      return writeSync(own, chunk);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return 0;
      throw err;
    }
  };
  return { write };
}
