import type { Generation, State } from '../generation.js';
import type { Resources } from '../resources.js';
import { drainingConnections, ownSocket } from '../status.js';
import { acceptQueue } from '../sys/socket.js';

/** What baton's gauges read at a scrape (or a `reload --wait --progress` looks at): cheap reads, no /proc scan. */
export interface Readings {
  /** Each live process; a draining one with the connections it still has open. */
  processes: Array<{ number: number; pid: number; state: State; connections?: number }>;
  /** The longest backoff of a crash restart pending now, ms. */
  backoffMs: number;
  /** baton's TCP listeners and what waits in their accept queues. */
  listeners: Array<{ name: string; queue: number }>;
  /** The listeners generations have of their own (port mode, a socket per generation under --steer). */
  sockets: Array<{ state: State; queue: number }>;
  /** --steer: each rule's counters, as the BPF program keeps them. */
  steering?: Array<{ rule: string; steered: number; nosock: number }>;
}

export interface ReadingParts {
  live: Iterable<Generation>;
  slots: { backoffMs(): number };
  resources: Pick<Resources, 'listeners' | 'plane'>;
}

/** Each live process, its generation and state: nothing is read from /proc. */
export function processes(live: Iterable<Generation>): Array<{ number: number; pid: number; state: State }> {
  return [...live].map((g) => ({ number: g.number, pid: g.pid, state: g.state }));
}

export function readings(p: ReadingParts): Readings {
  const live = [...p.live];
  const connections = drainingConnections(live);
  const { listeners, plane } = p.resources;
  return {
    processes: processes(live).map((row, i) => ({ ...row, connections: connections.get(live[i]!) })),
    backoffMs: p.slots.backoffMs(),
    listeners: listeners.flatMap((l) => {
      const waiting = l.address.kind === 'tcp' ? queue(l.fd) : undefined;
      return waiting === undefined ? [] : [{ name: l.name, queue: waiting }];
    }),
    sockets: live.flatMap((g) => {
      const own = ownSocket(g);
      return own ? [{ state: g.state, queue: own.queue }] : [];
    }),
    ...(plane ? { steering: plane.snapshot().rules } : {}),
  };
}

function queue(fd: number): number | undefined {
  try {
    return acceptQueue(fd);
  } catch {
    return undefined; // not a TCP socket after all (one socket activation handed over)
  }
}
