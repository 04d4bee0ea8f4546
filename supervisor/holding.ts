import type { Generation } from './generation.js';
import type { Listener } from './listener.js';
import type { Logger } from './log.js';
import { commandLine, environ, family, findSockets, socketHoldersAnywhere, socketOf } from './sys/proc.js';

/** How many of the listeners a generation serves from are open in its processes. */
export interface Holding {
  held: number;
  of: number;
}

/** A process outside baton and its live generations that holds one of baton's listeners. */
export interface Stray {
  pid: number;
  command: string;
  listener: string;
  /** The generation it came from, when its environment tells (BATON_GENERATION). */
  generation?: number;
}

type Serving = Pick<Generation, 'pid' | 'held'>;

/**
 * The listeners `gen` serves from, by socket: its own (the one it bound itself, or its generation socket under
 * --steer), else baton's (shared-socket handovers).
 */
function served(gen: Serving, listeners: Listener[], shares: boolean): Map<string, string> {
  if (gen.held) return new Map([[socketOf(gen.held.fd), `port ${gen.held.port}`]]);
  return new Map(shares ? listeners.map((l) => [socketOf(l.fd), l.name]) : []);
}

export function holding(gen: Serving, listeners: Listener[], shares: boolean): Holding {
  const wanted = [...served(gen, listeners, shares).keys()];
  return { held: findSockets(gen.pid, wanted).size, of: wanted.length };
}

/** Why `gen` cannot serve although it looks ready: it does not hold every listener. Undefined while it does. */
export function unheld(gen: Serving, listeners: Listener[], shares: boolean): string | undefined {
  const { held, of } = holding(gen, listeners, shares);
  return held < of ? `holds ${held} of ${of} listener(s): it closed them, or never took them` : undefined;
}

const reported = new WeakSet<Generation>();

/**
 * `gen` was counted ready and no longer holds every listener: connections wait on what it dropped
 * and nobody answers them. Logged once per generation (`listener-dropped`).
 */
export function reportDropped(gen: Generation, h: Holding, log: Logger): void {
  if (h.held === h.of || reported.has(gen)) return;
  reported.add(gen);
  const message = `holds ${h.held} of ${h.of} listener(s) after it was ready; connections to it wait unanswered`;
  log.event('listener-dropped', { generation: gen.number, worker: gen.worker, pid: gen.pid, message });
}

/** Whether every active generation holds its listeners; each one that dropped one is reported once. */
export function activeHold(
  live: Iterable<Generation>,
  listeners: Listener[],
  handover: { sharesListener: boolean },
  log: Logger,
): () => boolean {
  return () => {
    let all = true;
    for (const g of live) {
      if (g.state !== 'active') continue;
      const h = holding(g, listeners, handover.sharesListener);
      reportDropped(g, h, log);
      all &&= h.held === h.of;
    }
    return all;
  };
}

/**
 * Holders of baton's listeners (and of the ones its live generations bound) that are neither baton
 * nor in a live generation (its process tree or its escapees) nor in the process tree of one it
 * `kept` (the keeper, a dead baton's generation being retired). Reads every process's fd table.
 */
export function strays(live: Generation[], listeners: Listener[], kept: number[]): Stray[] {
  const names = new Map(listeners.map((l) => [socketOf(l.fd), l.name]));
  for (const g of live) for (const [socket, name] of served(g, [], false)) names.set(socket, name);
  const members = new Set([process.pid, ...live.flatMap((g) => [...family(g.pid), ...g.escapees.look(g.alive)])]);
  for (const pid of kept) for (const member of family(pid)) members.add(member);
  return socketHoldersAnywhere([...names.keys()])
    .filter((h) => !members.has(h.pid))
    .map((h) => {
      const from = environ(h.pid).find((e) => e.startsWith('BATON_GENERATION='));
      const command = commandLine(h.pid);
      const stray = { pid: h.pid, command, listener: names.get(h.socket)! };
      return from ? { ...stray, generation: Number(from.slice('BATON_GENERATION='.length)) } : stray;
    });
}
