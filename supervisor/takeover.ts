import { dirname } from 'node:path';
import { formatAddress, sameAddress } from './address.js';
import { alreadyRunning } from './errors.js';
import type { ListenSpec } from './listener.js';
import type { Logger } from './log.js';
import type { RecordedProcess, RunRecord } from './record.js';
import { removeRuntimeDir } from './runtime-dir.js';
import { pullSocket } from './sys/pidfd.js';
import { alive, startedAs } from './sys/proc.js';
import { listeningSockets } from './sys/proc-net.js';
import { isListening, socketAddress } from './sys/socket.js';

/** What a baton finds of a dead one with the same listeners: copies of the listeners, and its generations. */
export interface Takeover {
  taken: Map<ListenSpec, number>;
  orphans: RecordedProcess[];
}

/**
 * A recorded process is taken for the dead baton's generation only if it is the same process (pid
 * and start time) and was started by that baton as that generation (its environment): a record
 * that lies, or a pid reused since, never gets a process signalled.
 */
export function isOrphan(g: RecordedProcess): boolean {
  return startedAs(g.pid, g.starttime, [`NOTIFY_SOCKET=${g.notify}`, `BATON_GENERATION=${g.number}`]);
}

/** A copy of the listener on `spec`'s address from one of `orphans`, or undefined. */
function pullListener(spec: ListenSpec, orphans: RecordedProcess[], listening: Set<string>): number | undefined {
  // TCP: only sockets in LISTEN state are worth a copy (a server may hold thousands of connections).
  const among = spec.address.kind === 'unix' ? () => true : (socket: string) => listening.has(socket);
  const accept = (copy: number) => {
    const bound = isListening(copy) && socketAddress(copy);
    return bound ? sameAddress(bound, spec.address) : false;
  };
  for (const o of orphans) {
    const fd = pullSocket(o.pid, accept, { among });
    if (fd !== undefined) return fd;
  }
  return undefined;
}

/**
 * After baton's death its generations serve on from their copies of the listeners. A baton started
 * with the same --listen finds them through the run record and takes a copy of each listener from
 * them instead of binding (which would fail: the address is in use).
 */
export function takeOver(record: RunRecord, specs: ListenSpec[], log: Logger): Takeover {
  const taken = new Map<ListenSpec, number>();
  const prev = record.read();
  if (!prev || prev.pid === process.pid) return { taken, orphans: [] };
  if (alive(prev.pid, prev.starttime)) {
    const addresses = specs.map((s) => formatAddress(s.address)).join(', ');
    throw alreadyRunning(`a baton already listens on ${addresses}`, prev.pid);
  }
  const orphans = prev.generations.filter(isOrphan);
  const listening = new Set(listeningSockets().map((s) => `socket:[${s.inode}]`));
  for (const spec of specs) {
    const fd = orphans.length > 0 ? pullListener(spec, orphans, listening) : undefined;
    if (fd === undefined) continue;
    taken.set(spec, fd);
    log.event('takeover', {
      listener: formatAddress(spec.address),
      message: `took the listener over from the generations of baton pid ${prev.pid}, which died`,
    });
  }
  for (const o of orphans) {
    const message = 'a generation left serving by a baton that died; it is retired once the next one is active';
    log.event('orphan', { generation: o.number, pid: o.pid, message });
  }
  // Only a directory a generation's environment proves the dead baton made is its to clean.
  if (orphans.some((o) => dirname(o.notify) === prev.runtimeDir)) removeRuntimeDir(prev.runtimeDir);
  return { taken, orphans };
}
