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
