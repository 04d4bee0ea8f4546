import { signalNumber } from './duration.js';

/** How a process ended, as Node's 'exit' event gives it. */
export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Shell convention: the exit code, or 128 + the signal number. */
export function exitCode(s: ExitStatus): number {
  return s.code ?? 128 + signalNumber(s.signal ?? 'SIGKILL');
}

export function describeExit(s: ExitStatus): string {
  return s.signal ? `killed by ${s.signal}` : `exited with code ${s.code}`;
}

/** What stopOutcome() reads of a generation (a Generation). */
export interface Ended {
  number: number;
  status?: ExitStatus;
  /** Why baton sent it SIGKILL, if it did. */
  killed?: string;
  /** When baton sent it the stop signal, if it did. */
  times: { stop?: number };
  /** The stop signal of the configuration it was launched under. */
  release: { stopSignal: NodeJS.Signals };
}

/** How a generation ended, when that was a clean end of a stop: exit 0, or baton's own stop signal or SIGKILL. */
function cleanEnd(gen: Ended): string | undefined {
  const s = gen.status;
  const { stopSignal } = gen.release;
  if (s?.code === 0) return 'exited 0';
  if (s?.signal === 'SIGKILL' && gen.killed) return `killed by baton's SIGKILL (${gen.killed})`;
  if (s?.signal === stopSignal && gen.times.stop !== undefined) return `ended by the stop signal ${stopSignal}`;
  return undefined;
}

/**
 * baton's exit code after a stop, and the `stopped` event's message saying why: 0 when every generation baton
 * stopped, and the last active one, ended cleanly (so that systemd and Docker count the stop a success); else the
 * exit status of one that did not (the last active one first): a crash during the stop, an exit with an error
 * code, a signal baton did not send.
 */
export function stopOutcome(stopped: Ended[], last: Ended | undefined): { code: number; message: string } {
  const ended = [...new Set([...stopped, ...(last ? [last] : [])])].filter((g) => g.status);
  const unclean = ended.filter((g) => !cleanEnd(g));
  const failed = unclean.find((g) => g === last) ?? unclean[0];
  if (failed?.status) {
    return { code: exitCode(failed.status), message: `generation ${failed.number} ${describeExit(failed.status)}` };
  }
  const how = [...new Set(ended.map(cleanEnd))];
  return { code: 0, message: how.length ? `clean stop: every generation ${how.join(', or ')}` : 'clean stop' };
}
