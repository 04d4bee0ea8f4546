import type { Step } from '../control/progress.js';
import { printable } from '../printable.js';

/** Each event as `reload --wait --progress` names the step. */
const STEP: Record<string, string> = {
  'config-changed': 'config changed',
  'preflight-failed': 'preflight failed',
  'upgrade-refused': 'refused',
  spawn: 'spawned',
  grab: 'grabbed',
  ready: 'ready',
  active: 'active',
  upgraded: 'all active',
  draining: 'draining',
  connections: 'draining',
  failed: 'failed',
  rollback: 'rolled back',
  regained: 'serves again',
  unhealthy: 'unhealthy',
  stop: 'stopping',
  kill: 'killed',
  exit: 'stopped',
  'self-upgrade': 'self-upgrade',
};

const ms = (v: unknown) => (typeof v === 'number' ? `${v}ms` : '?');

function detail(s: Step): string {
  switch (s.event) {
    case 'connections':
      return `: ${s.connections} connection(s) open`;
    case 'grab':
      return ` the listeners after ${ms(s.grab)}`;
    case 'ready':
      return ` after ${ms(s.ready)}`;
    case 'upgraded':
      return `: ${s.workers} worker(s) in ${ms(s.upgrade)}, canary window ${ms(s.canary)}`;
    case 'draining':
      return s.drain === undefined ? '' : ` (stopped in ${ms(s.drain)})`;
    case 'stop':
      return ` with ${s.signal}`;
    default:
      return s.message === undefined ? '' : `: ${s.message}`;
  }
}

/** One step, `at` ms after the request, as a line (without its newline). */
export function stepLine(s: Step, at: number): string {
  const pid = s.pid === undefined ? '' : ` pid ${s.pid}`;
  const who = s.generation === undefined ? '' : ` generation ${s.generation}${pid}`;
  return printable(`${(at / 1000).toFixed(3).padStart(8)}s ${STEP[s.event] ?? s.event}${who}${detail(s)}`);
}

/**
 * Prints steps as they come: one line each; on a terminal a draining process's connections count down in place.
 * Returns what ends the display (a last newline where a count was left in place).
 */
export function stepPrinter(out: NodeJS.WriteStream): { print(s: Step): void; end(): void } {
  const started = performance.now();
  let inPlace = false;
  const tty = out.isTTY === true;
  return {
    print(s) {
      const line = stepLine(s, performance.now() - started);
      const counting = tty && s.event === 'connections';
      out.write(`${inPlace ? (counting ? '\r\x1b[K' : '\n') : ''}${line}${counting ? '' : '\n'}`);
      inPlace = counting;
    },
    end() {
      if (inPlace) out.write('\n');
      inPlace = false;
    },
  };
}
