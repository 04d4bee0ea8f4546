import { BatonError } from './errors.js';
import { recordedProcess } from './record.js';
import { isRuntimeDir } from './runtime-dir.js';
import { bool, int, list, num, record, text } from './schema.js';
import { RESUME_ENV, type ResumeState } from './self-upgrade.js';
import { parentPid, processGroup, startTime } from './sys/proc.js';
import { isListening, peerCredentials } from './sys/socket.js';

const STATES = ['starting', 'ready', 'active', 'draining', 'exited', 'failed'];

/** The fields every build since the first format sends (an older build sends only these), and the later ones. */
const valid = record(
  {
    listeners: list(record({ fd: int, name: text, address: record({ kind: text }) })),
    runtimeDir: text,
    next: int,
    failures: int,
    crashes: list(num),
    workers: int,
    pending: bool,
    startedAt: num,
    history: list(record({})),
    generations: list(
      record(
        {
          number: int,
          worker: int,
          pid: int,
          state: (v) => STATES.includes(v as string),
          ageMs: num,
          own: list(int),
          times: record({}),
        },
        { port: int, activeAt: num, unhealthy: int, dir: text },
      ),
    ),
  },
  {
    lastActive: int,
    signals: list(text),
    control: record({ fd: int, made: list(text) }),
    metrics: record({ fd: int }),
    oomScoreAdj: num,
    oomFd: int,
    logDropped: int,
    from: record({ pid: int, starttime: text }),
    orphans: list(recordedProcess),
    canary: record(
      {
        ...{ number: int, switched: list(record({ slot: int }, { pid: int, old: int })), before: int, workers: int },
        ...{ servedBefore: bool, requestedAt: text, began: num, endsAt: num, readyMs: num },
        ...{ changes: list(text), clients: list(int) },
      },
      { lastBefore: int },
    ),
    clients: list(int),
    sockets: list(int),
  },
);

/** A `reload --wait` client's connection: a unix socket whose peer may ask baton (serve.ts checks the same). */
function isClient(fd: number): boolean {
  try {
    const peer = peerCredentials(fd);
    return peer.uid === 0 || peer.uid === (process.getuid?.() ?? 0);
  } catch {
    return false;
  }
}

/** Why this process may not take `state`, or undefined: it must name only what baton's last program held. */
function untrusted(state: ResumeState): string | undefined {
  const self = process.pid;
  if (state.from && (state.from.pid !== self || state.from.starttime !== startTime(self)))
    return `it was written by pid ${state.from.pid}, not by this process before its execve`;
  for (const g of state.generations) {
    // A generation is baton's child and leads its own process group; pid 1 never is one.
    if (g.pid <= 1 || parentPid(g.pid) !== self || processGroup(g.pid) !== g.pid)
      return `pid ${g.pid} is not a child of baton leading its own process group`;
  }
  // Not the generations' own sockets (port mode): a server may have shut its listener down meanwhile.
  const idle = state.listeners.find((l) => !isListening(l.fd));
  if (idle) return `fd ${idle.fd} (listener ${idle.name}) is not a listening socket`;
  const socket = (state.sockets ?? []).find((fd) => !isListening(fd));
  if (socket !== undefined) return `fd ${socket} (a generation's socket) is not a listening socket`;
  const client = [...(state.clients ?? []), ...(state.canary?.clients ?? [])].find((fd) => !isClient(fd));
  if (client !== undefined) return `fd ${client} is not the connection of a client that may control baton`;
  if (!isRuntimeDir(state.runtimeDir)) return `${state.runtimeDir} is not a runtime directory of this user's baton`;
  return undefined;
}

/**
 * The state left by the baton this process replaced (and removes it from the environment): checked
 * before anything in it is used, since it names processes to signal and a directory to remove.
 */
export function takeResumeState(): ResumeState | undefined {
  const raw = process.env[RESUME_ENV];
  delete process.env[RESUME_ENV];
  if (!raw) return undefined;
  let state: unknown;
  try {
    state = JSON.parse(raw);
  } catch {
    state = undefined;
  }
  const why = valid(state) ? untrusted(state as ResumeState) : 'it is not the state a baton writes';
  if (why) {
    throw new BatonError(
      'ERR_BATON_RESUME',
      `refusing ${RESUME_ENV}: ${why}`,
      `${RESUME_ENV} is set only by baton for the program it execs into: unset it to start a new baton`,
    );
  }
  return state as ResumeState;
}
