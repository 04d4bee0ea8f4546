import { addressList } from '../listener.js';
import type { Handover } from './handover.js';

// LISTEN_PID must be the server's own pid, known only after fork: a shell shim sets it and execs.
const SHIM = 'LISTEN_PID=$$; export LISTEN_PID; exec "$@"';

/** systemd's socket-activation protocol: listeners at fds 3.. with LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID. */
export const inherit: Handover = {
  name: 'inherit',
  defaultReady: { kind: 'delay', ms: 1000 },
  sharesListener: true,
  grabs: false,
  pulls: false,
  plan(command, listeners) {
    return {
      file: '/bin/sh',
      args: ['-c', SHIM, 'baton-shim', ...command],
      env: {
        LISTEN_FDS: String(listeners.length),
        LISTEN_FDNAMES: listeners.map((l) => l.name).join(':'),
        BATON_LISTENERS: addressList(listeners),
      },
      stdio: ['ignore', 'inherit', 'inherit', ...listeners.map((l) => l.fd)],
    };
  },
  begin() {
    return {};
  },
};
