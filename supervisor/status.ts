import { connectionsOf } from './accept-queue.js';
import { formatAddress } from './address.js';
import type { Generation } from './generation.js';
import type { Handover } from './handover/handover.js';
import type { HelperInfo, Helpers } from './helpers.js';
import { type Holding, holding, reportDropped, type Stray, strays } from './holding.js';
import type { Logger } from './log.js';
import { printable } from './printable.js';
import type { Resources } from './resources.js';
import { establishedInodes } from './sys/proc-net.js';
import { acceptQueue } from './sys/socket.js';
import type { History, UpgradeResult } from './upgrade.js';

/** A process of a generation, in the status. */
export interface GenerationRow {
  number: number;
  worker: number;
  pid: number;
  state: string;
  ageMs: number;
  readyMs?: number;
  connections?: number;
  /** The directory it runs in (the release resolved at its launch); unknown for orphans. */
  dir?: string;
  /** Ready and active ones: how many of the listeners it serves from its processes hold. */
  holds?: Holding;
  /** Its descendants that left its process group (they get its signals one by one). */
  escaped?: number[];
  /** A listener of its own (port mode, or its generation's socket under --steer): where, and what waits in it. */
  socket?: { address: string; queue: number };
}

/** What `baton status` reports; durations in ms. */
export interface Status {
  pid: number;
  name: string;
  uptimeMs: number;
  handover: string;
  workers: number;
  listeners: Array<{ name: string; address: string; fd: number }>;
  generations: GenerationRow[];
  /** Generations of a baton that died, taken over and not yet gone: `orphan`, then `retiring`. */
  orphans?: GenerationRow[];
  /** Processes that hold a listener but are neither baton nor part of a live generation. */
  strays: Stray[];
  /** The --check preflight and readiness probes running now. */
  helpers: HelperInfo[];
  upgrades: UpgradeResult[];
  failures: number;
  /** Where --metrics serves GET /metrics. */
  metrics?: string;
  /** baton's own memory (process.memoryUsage()), bytes. */
  memory: NodeJS.MemoryUsage;
  steering?: {
    name: string;
    pins: string;
    slot: string;
    rules: Array<{ rule: string; steered: number; nosock: number }>;
  };
}

/** What status is built from. */
export interface StatusParts {
  config: { name: string };
  handover: Pick<Handover, 'name' | 'sharesListener'>;
  log: Logger;
  slots: { length: number };
  resources: Pick<Resources, 'startedAt' | 'listeners' | 'plane' | 'orphans' | 'keeper'>;
  live: Iterable<Generation>;
  history: History;
  helpers: Pick<Helpers, 'list'>;
}

export function buildStatus(p: StatusParts): Status {
  const live = [...p.live];
  const { listeners, plane, startedAt, orphans, keeper } = p.resources;
  const orphanState = orphans.retired ? 'retiring' : 'orphan';
  const connections = drainingConnections(live);
  const holds = (g: Generation) => {
    if (g.state !== 'ready' && g.state !== 'active') return undefined;
    const h = holding(g, listeners, p.handover.sharesListener);
    reportDropped(g, h, p.log);
    return h;
  };
  const escaped = (g: Generation) => {
    const pids = g.escapees.look(g.alive);
    return pids.length ? pids : undefined;
  };
  return {
    pid: process.pid,
    name: p.config.name,
    uptimeMs: Date.now() - startedAt,
    handover: p.handover.name,
    workers: p.slots.length,
    listeners: listeners.map((l) => ({ name: l.name, address: formatAddress(l.address), fd: l.fd })),
    generations: live.map((g) => ({
      number: g.number,
      worker: g.worker,
      pid: g.pid,
      state: g.state,
      ageMs: g.ms(),
      readyMs: g.times.ready,
      connections: connections.get(g),
      dir: g.release.dir || undefined,
      holds: holds(g),
      escaped: escaped(g),
      socket: ownSocket(g),
    })),
    orphans: orphans.remaining.map(({ number, worker, pid, startedAt }) => {
      return { number, worker, pid, state: orphanState, ageMs: Date.now() - startedAt };
    }),
    strays: strays(live, listeners, [...orphans.remaining.map((o) => o.pid), ...(keeper?.pid ? [keeper.pid] : [])]),
    helpers: p.helpers.list(),
    upgrades: p.history.list(),
    failures: p.history.failures,
    memory: process.memoryUsage(),
    ...(plane ? { steering: plane.snapshot() } : {}),
  };
}

/** The connections still open in each draining process: its sockets that are established TCP connections. */
export function drainingConnections(live: Generation[]): Map<Generation, number> {
  const draining = live.filter((g) => g.state === 'draining');
  // /proc/net/tcp lists every connection on the host (TIME_WAIT too): read it only when needed.
  const established = draining.length > 0 ? establishedInodes() : new Set<number>();
  return new Map(draining.map((g) => [g, connectionsOf(g.pid, established)]));
}

/** The listener a generation has of its own, and its accept queue (baton's copy of it is open while it lives). */
export function ownSocket(g: Generation): GenerationRow['socket'] {
  if (!g.held || !g.alive) return undefined;
  const address = g.socket ? formatAddress(g.socket.listener.address) : `port ${g.held.port}`;
  return { address, queue: acceptQueue(g.held.fd) };
}

const age = (ms: number) =>
  ms < 10_000 ? `${ms}ms` : ms < 600_000 ? `${Math.round(ms / 1000)}s` : `${Math.round(ms / 60_000)}m`;

/** The human form of a status. */
export function formatStatus(s: Status): string {
  const counts = `${s.workers} worker(s), ${s.failures} failed upgrade(s)`;
  const lines = [`baton pid ${s.pid} (${s.name}), up ${age(s.uptimeMs)}, handover ${s.handover}, ${counts}`];
  for (const l of s.listeners) lines.push(`  listener ${l.name} ${l.address} (fd ${l.fd})`);
  if (s.metrics) lines.push(`  metrics at ${s.metrics} (GET /metrics)`);
  lines.push('  GEN  WORKER PID      STATE     AGE     READY   HOLDS CONNS DIR');
  for (const g of [...s.generations, ...(s.orphans ?? [])]) {
    const ready = g.readyMs === undefined ? '-' : `${g.readyMs}ms`;
    const cells = [
      [g.number, 4],
      [g.worker, 6],
      [g.pid, 8],
      [g.state, 9],
      [age(g.ageMs), 7],
      [ready, 7],
      [g.holds ? `${g.holds.held}/${g.holds.of}` : '-', 5],
      [g.connections ?? '-', 5],
    ] as const;
    lines.push(`  ${cells.map(([v, w]) => String(v).padEnd(w)).join(' ')} ${g.dir ?? '-'}`);
    const h = g.holds;
    if (h && h.held < h.of) lines.push(`    holds ${h.held} of ${h.of} listener(s): connections to it wait unanswered`);
    if (g.escaped) lines.push(`    left its process group: pid ${g.escaped.join(', pid ')}`);
    if (g.socket) lines.push(`    socket ${g.socket.address}, ${g.socket.queue} waiting in its accept queue`);
  }
  for (const x of s.strays ?? []) {
    // an older baton's status has none
    const from = x.generation === undefined ? '' : ` (from generation ${x.generation})`;
    lines.push(`  stray: pid ${x.pid} holds listener ${x.listener} outside any generation${from}: ${x.command}`);
  }
  for (const h of s.helpers ?? []) {
    // an older baton's status has none
    const what = h.kind === 'check' ? 'preflight --check' : `${h.kind} probe of gen ${h.generation}`;
    lines.push(`  ${what} running for ${age(h.ageMs)}, pid ${h.pid} (its own process group): ${h.command}`);
  }
  if (s.steering) {
    lines.push(`  steering ${s.steering.name} (${s.steering.pins}), slot socket ${s.steering.slot}`);
    for (const r of s.steering.rules) lines.push(`    --steer ${r.rule}: steered ${r.steered}, no socket ${r.nosock}`);
  }
  if (s.upgrades.length) lines.push('  last upgrades:');
  for (const u of s.upgrades) {
    const when = u.rollback
      ? ` (rolled back ${u.rollback === 'canary' ? 'in the canary window' : 'before ready'})`
      : '';
    const reason = u.reason ? `: ${u.reason}` : '';
    const outcome = `${u.ok ? 'ok    ' : 'failed'} gen ${u.generation || '-'} in ${u.ms}ms${when}${reason}`;
    lines.push(`    ${u.requestedAt} ${outcome}`);
  }
  // Command lines, --check output and child STATUS are the processes' own text: no raw control characters.
  return lines.map(printable).join('\n');
}
