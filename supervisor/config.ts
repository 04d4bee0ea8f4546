import { statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Address } from './address.js';
import type { HandoverName } from './handover/handover.js';
import type { ListenSpec } from './listener.js';
import type { LogFormat } from './log.js';
import type { ReadySpec } from './ready/index.js';
import type { RunAs } from './run-as.js';
import type { Rule } from './steering/rules.js';

/** --health probe:<command>, --health-interval, --health-failures. */
export interface HealthSpec {
  command: string;
  intervalMs: number;
  /** Failures in a row, after the canary window, that count as a crash. */
  failures: number;
}

/** Everything the supervisor needs, validated; durations in ms. */
export interface Config {
  command: string[];
  /** The working directory as given (a release link kept as a link): resolved again at each upgrade. */
  cwd: string;
  /** --env-file: read again at each upgrade, in the release's directory where relative; `-PATH` may be missing. */
  envFiles: string[];
  listen: ListenSpec[];
  backlog: number;
  handover: HandoverName;
  ready: ReadySpec;
  readyTimeout: number;
  drain: number;
  stopSignal: NodeJS.Signals;
  killTimeout: number;
  maxDraining: number;
  /** Processes per generation, all on the same listeners. */
  workers: number;
  /** New workers started at once in a rolling wave. */
  surge: number;
  pidFile?: string;
  /** Preflight shell command before each upgrade, and how long it may take. */
  check?: string;
  checkTimeout: number;
  /** --health: a probe of each active process, every interval. */
  health?: HealthSpec;
  /** Control socket path. */
  control: string;
  /** --metrics: where GET /metrics is served (off when undefined). */
  metrics?: Address;
  subreaper: boolean;
  logFormat: LogFormat;
  /** --user: generations, --check and probes run as this user. */
  user?: RunAs;
  /** Steering (SK_LOOKUP); none when `steer` is empty. */
  steer: Rule[];
  name: string;
  stateDir: string;
  bpffs: string;
  force: boolean;
  keepSteering: boolean;
  /** --shared-socket: under --steer every generation serves from baton's one socket, not a socket of its own. */
  sharedSocket: boolean;
}

/**
 * Under --steer with a shared-listener handover (pidfd, inherit) each generation gets a socket of its own, bound
 * where --listen says, and the steering slot is switched to it once it is ready (gen-socket.ts); --shared-socket
 * keeps one socket for baton's life. Port mode: each generation binds its own anyway.
 */
export function socketPerGeneration(
  c: { steer: readonly unknown[]; sharedSocket: boolean },
  handover: { sharesListener: boolean },
): boolean {
  return c.steer.length > 0 && !c.sharedSocket && handover.sharesListener;
}

/** The command line's name of a Config key or a camel-case --config key: readyTimeout → ready-timeout. */
export function optionName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

export const defaults = {
  backlog: 511,
  handover: 'pidfd' as HandoverName,
  readyTimeout: 60_000,
  drain: 5_000,
  stopSignal: 'SIGTERM' as NodeJS.Signals,
  killTimeout: 30_000,
  maxDraining: 4,
  logFormat: 'text' as LogFormat,
};

/**
 * The most workers a baton runs (--workers, --surge, SIGTTIN): nginx's own limit (NGX_MAX_PROCESSES). A fixed
 * number, so that one configuration means the same on every host; a typo like 100000 is refused, not forked.
 */
export const MAX_WORKERS = 1024;

/** Crash restarts wait 1.5^(n-1) s for the n-th crash in a row, at most 30 s. */
export const backoff = { base: 1_000, factor: 1.5, max: 30_000, stableAfter: 60_000, loopReport: 5 };

/** A steering --name: a file name in bpffs and under /run/baton (no dots: bpffs refuses them; no slashes). */
export const NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** Where a steering name keeps its state unless --state-dir says otherwise. */
export function stateDirFor(name: string): string {
  return `/run/baton/${name}`;
}

/** The bpffs mount baton pins under (BATON_BPFFS: a test's or a container's own). */
export function bpffsRoot(): string {
  return process.env.BATON_BPFFS ?? '/sys/fs/bpf';
}

/**
 * Where baton keeps its run records, and control sockets when no path is given: $XDG_RUNTIME_DIR/baton,
 * /run/baton for root, else a per-user temp dir. Root takes $XDG_RUNTIME_DIR only if root owns it: after `su` or
 * `sudo -E` it may still be the invoking user's, who could then swap root baton's control socket.
 */
export function runtimeBase(): string {
  const uid = process.geteuid?.() ?? 0;
  const xdg = process.env.XDG_RUNTIME_DIR;
  if (xdg && (uid !== 0 || ownerOf(xdg) === 0)) return join(xdg, 'baton');
  return uid === 0 ? '/run/baton' : join(tmpdir(), `baton-${uid}`);
}

function ownerOf(path: string): number | undefined {
  try {
    return statSync(path).uid;
  } catch {
    return undefined;
  }
}
