import { request } from '../control/client.js';
import type { BatonError } from '../errors.js';
import { formatStatus, type Status } from '../status.js';

const EVERY_MS = 1000;
/** Clears a terminal and puts the cursor top left. */
const CLEAR = '\x1b[H\x1b[2J';

/**
 * `baton status --watch`: the status every second until SIGINT or SIGTERM (then exit 0), redrawn in place on a
 * terminal, else one after the other (with --json one object a line). A baton that does not answer is said so, and
 * asked again a second later, like watch(1).
 */
export async function watchStatus(path: string, json: boolean, out: NodeJS.WriteStream, answerMs: number) {
  let stop = () => {};
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  let running = true;
  const end = () => {
    running = false;
    stop();
  };
  process.once('SIGINT', end).once('SIGTERM', end);
  out.on('error', end); // its reader went away (EPIPE): nobody watches
  while (running) {
    const shown = await show(path, json, answerMs);
    if (!running) break;
    if (out.isTTY) out.write(`${CLEAR}${new Date().toISOString()}, every 1s (Ctrl-C ends)\n${shown}\n`);
    else out.write(json ? `${shown}\n` : `${shown}\n\n`);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([stopped, new Promise((resolve) => (timer = setTimeout(resolve, EVERY_MS)))]);
    clearTimeout(timer);
  }
  process.off('SIGINT', end).off('SIGTERM', end);
  out.off('error', end);
}

async function show(path: string, json: boolean, answerMs: number): Promise<string> {
  try {
    const reply = await request(path, { command: 'status' }, answerMs);
    if (!reply.ok) return `baton: ${reply.error.message}`;
    return json ? JSON.stringify(reply.status) : formatStatus(reply.status as Status);
  } catch (err) {
    const e = err as BatonError;
    const text = `baton: ${e.message}${e.hint ? ` (${e.hint})` : ''}`;
    return json ? JSON.stringify({ error: { code: e.code, message: e.message } }) : text;
  }
}
