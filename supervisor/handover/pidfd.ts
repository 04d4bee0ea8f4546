import { addressList } from '../listener.js';
import { setPtracer } from '../sys/prctl.js';
import { yamaScope } from '../sys/proc.js';
import { watchGrab } from './grab.js';
import type { Handover } from './handover.js';

/** The seed's protocol: the child pulls baton's fds with pidfd_open(_PID) + pidfd_getfd(_FD). */
export const pidfd: Handover = {
  name: 'pidfd',
  defaultReady: { kind: 'grab' },
  sharesListener: true,
  grabs: true,
  pulls: true,
  plan(command, listeners) {
    return {
      file: command[0]!,
      args: command.slice(1),
      env: {
        _PID: String(process.pid),
        _FD: listeners.map((l) => l.fd).join(','),
        BATON_LISTENERS: addressList(listeners),
      },
      stdio: ['ignore', 'inherit', 'inherit'],
    };
  },
  begin(pid, _plan, listeners, signal) {
    // Under Yama scope 1 only a named descendant-turned-tracer may attach to its parent.
    const named = yamaScope() === 1;
    if (named) setPtracer(pid);
    return {
      watch: watchGrab(
        pid,
        listeners.map((l) => l.fd),
        signal,
      ).then(() => undefined),
      end() {
        if (named) setPtracer(0);
      },
    };
  },
};
