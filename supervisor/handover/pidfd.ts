import { addressList } from '../listener.js';
import { watchGrab } from './grab.js';
import type { Handover, Source } from './handover.js';

/** Children of pidfd launches that have not grabbed yet, in spawn order: the first is the named tracer. */
const waiting: number[] = [];

/**
 * Yama (scope 1) names one tracer per process, so concurrent launches (--workers, --surge) take
 * turns in spawn order: each child is named once the ones before it have grabbed (or failed), and
 * no longer than that. Returns what ends `pid`'s turn (idempotent).
 */
function tracerTurn(pid: number, source: Source): () => void {
  waiting.push(pid);
  if (waiting.length === 1) source.nameTracer(pid);
  return () => {
    const i = waiting.indexOf(pid);
    if (i < 0) return;
    waiting.splice(i, 1);
    if (i === 0) source.nameTracer(waiting[0] ?? 0);
  };
}

/** The seed's protocol: the child pulls the listeners with pidfd_open(_PID) + pidfd_getfd(_FD), from the keeper. */
export const pidfd: Handover = {
  name: 'pidfd',
  defaultReady: { kind: 'grab' },
  sharesListener: true,
  grabs: true,
  pulls: true,
  plan(command, listeners, source) {
    return {
      file: command[0]!,
      args: command.slice(1),
      env: {
        _PID: String(source.pid),
        _FD: source.fds.join(','),
        BATON_LISTENERS: addressList(listeners),
      },
      stdio: ['ignore', 'inherit', 'inherit'],
    };
  },
  begin(pid, _plan, listeners, signal, source) {
    // Under Yama scope 1 only a process the source names may attach to it (the child is not its ancestor).
    const done = tracerTurn(pid, source);
    const fds = listeners.map((l) => l.fd);
    const watch = watchGrab(pid, fds, signal).then(() => {
      done();
      return undefined;
    });
    return { watch, end: done };
  },
};
