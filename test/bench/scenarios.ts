import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Baton, type LogEvent, root } from '../helpers/baton.js';
import { freePort, type LoadResult } from '../helpers/load.js';
import { Netns } from '../helpers/netns.js';

const run = promisify(execFile);
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const netclient = `${root}test/helpers/netclient.ts`;

export const SERVERS = {
  helper: [`${root}examples/http-server.mjs`],
  naive: [`${root}test/bench/server.mjs`, 'naive'],
  slow: [`${root}test/bench/server.mjs`, 'slow'],
  cpu: [`${root}test/bench/server.mjs`, 'cpu'],
  bad: [`${root}test/bench/server.mjs`, 'bad'],
} as const;
export type ServerKind = keyof typeof SERVERS;

/** One upgrade as the scenario saw it; ms. */
export interface UpgradeMark {
  at: number; // since the load started
  toActive?: number;
  toOldGone?: number;
  /** baton's own ms (the `upgraded` event's own_ms) and its steps. */
  batonAdded?: number;
  /** The CPU baton's main thread spent in those steps (own_cpu_ms). */
  batonCpu?: number;
  steps?: BatonSteps;
}

/** baton's own steps of one upgrade, ms (the `upgraded` event's plan_ms, spawn_ms, ...); exec, record beside own. */
export interface BatonSteps {
  plan: number;
  spawn: number;
  /** Absent in results measured before baton timed it (exec: before the clone ran off baton's thread). */
  exec?: number;
  record?: number;
  activate: number;
  switch: number;
}

/** A way to run the server and upgrade it. */
export interface Scenario {
  name: string;
  netns?: Netns;
  start(server: ServerKind, workers: number): Promise<number>;
  upgrade(): Promise<Omit<UpgradeMark, 'at'>>;
  stop(): Promise<void>;
  /** The supervisor's pid (baton's), whose own CPU time the steady state reports. */
  supervisor?(): number | undefined;
  /** The process that serves (one worker), whose CPU per request the steady state reports. */
  server?(): number | undefined;
  /** Called after stop: what only the log could tell (old generation gone, baton's own time). */
  finish?(marks: UpgradeMark[]): void;
}

async function accepting(port: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net
        .connect(port, '127.0.0.1', () => {
          s.destroy();
          resolve(true);
        })
        .on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`port ${port} never accepted`);
    await sleep(20);
  }
}

/** Parallel client loops of every load in the benchmark. */
export const CLIENTS = 8;

/** The load generator, in its own process (inside the scenario's network namespace if any). */
export async function startLoad(
  port: number,
  keepAlive: boolean,
  maxMs: number,
  netns?: Netns,
): Promise<{ stop: () => Promise<LoadResult>; startedAt: number }> {
  const opts = JSON.stringify({ port, keepAlive, concurrency: CLIENTS, maxMs, maxRequests: 2_000_000, record: true });
  const argv = [process.execPath, '--import', 'tsx', netclient, 'load', opts];
  const prefix = netns?.prefix ?? [];
  const c = spawn(prefix[0] ?? argv[0]!, [...prefix.slice(1), ...(prefix.length ? argv : argv.slice(1))], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  c.stdout.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => c.once('exit', (code) => resolve(code)));
  await Promise.race([
    new Promise<void>((resolve) => c.stdout.on('data', () => out.includes('started') && resolve())),
    exited.then((code) => Promise.reject(new Error(`the load generator exited (${code}) before it started`))),
  ]);
  const startedAt = performance.now();
  const done = exited.then(() => JSON.parse(out.split('\n')[1]!) as LoadResult);
  return {
    startedAt,
    stop: () => {
      c.kill('SIGTERM');
      return done;
    },
  };
}

/** CPU time (user + system, ms) a process has used so far, from /proc/PID/stat. */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): utime and stime are fields 14 and 15, in clock ticks
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS;
}
const TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
/** The resolution of cpuMs. */
export const CPU_TICK_MS = 1000 / TICKS;

/**
 * The server alone (no upgrades), or stopped and started again at each upgrade. It runs in a session of its
 * own (`detached`: setsid before exec), as baton runs each generation, and is stopped through its process group.
 * 'handed listener': alone, but its listener is made by another process (holder.ts) and taken with _PID and _FD,
 * as from baton: a handover without baton.
 */
export function plain(name: 'alone' | 'stop-start' | 'handed listener'): Scenario {
  let child: ChildProcess | undefined;
  let holder: ChildProcess | undefined;
  let env: NodeJS.ProcessEnv = {};
  let port = 0;
  let server: readonly string[] = [];
  const launch = async () => {
    child = spawn(process.execPath, [...server], { env: { ...process.env, ...env }, stdio: 'ignore', detached: true });
    await accepting(port);
  };
  const kill = async () => {
    const c = child!;
    if (c.exitCode !== null || c.signalCode !== null) return; // it died by itself (the bad release)
    const gone = new Promise((r) => c.once('exit', r));
    process.kill(-c.pid!, 'SIGTERM');
    // bounded: a server that has not exited 10 s after SIGTERM is killed
    const timer = setTimeout(() => process.kill(-c.pid!, 'SIGKILL'), 10_000);
    await gone;
    clearTimeout(timer);
  };
  return {
    name,
    async start(kind) {
      server = SERVERS[kind];
      if (name === 'handed listener') {
        const h = spawn(process.execPath, ['--import', 'tsx', `${root}test/bench/holder.ts`], { cwd: root });
        holder = h;
        const line = await new Promise<string>((resolve, reject) => {
          h.stdout!.once('data', (d: Buffer) => resolve(String(d)));
          h.once('exit', (code) => reject(new Error(`holder.ts exited (${code}) before it listened`)));
        });
        const [p, fd] = line.trim().split(' ');
        [port, env] = [Number(p), { _PID: String(h.pid), _FD: fd }];
      } else {
        port = await freePort();
        env = { PORT: String(port) };
      }
      await launch();
      return port;
    },
    async upgrade() {
      if (name !== 'stop-start') return {};
      const t0 = performance.now();
      await kill();
      const gone = performance.now() - t0;
      await launch();
      return { toActive: performance.now() - t0, toOldGone: gone };
    },
    server: () => child?.pid,
    async stop() {
      await kill();
      holder?.kill();
    },
  };
}

/** pm2 cluster mode, `pm2 reload`, with a private PM2_HOME; its daemon is killed at the end. */
export function pm2(instances = 1): Scenario {
  const home = mkdtempSync(join(tmpdir(), 'baton-bench-pm2-'));
  const env = { ...process.env, PM2_HOME: home };
  const bin = `${root}node_modules/.bin/pm2`;
  return {
    name: instances > 1 ? `pm2 cluster ×${instances}` : 'pm2 cluster',
    async start(kind) {
      const port = await freePort();
      const [script, ...args] = SERVERS[kind];
      const eco = join(home, 'ecosystem.json');
      const app = {
        name: 'bench',
        script,
        args,
        exec_mode: 'cluster',
        instances,
        env: { PORT: String(port) },
        kill_signal: 'SIGTERM',
        kill_timeout: 5000,
        listen_timeout: 8000,
      };
      writeFileSync(eco, JSON.stringify({ apps: [app] }));
      await run(bin, ['start', eco], { env });
      await accepting(port);
      return port;
    },
    async upgrade() {
      const t0 = performance.now();
      await run(bin, ['reload', 'bench'], { env });
      return { toActive: performance.now() - t0 };
    },
    async stop() {
      await run(bin, ['kill'], { env }).catch(() => {});
      rmSync(home, { recursive: true, force: true });
    },
  };
}

/** ms from event a to event b, from the times in baton's log (ISO strings: 1 ms resolution). */
const ms = (a: LogEvent | undefined, b: LogEvent | undefined) =>
  a && b ? Date.parse(String(b.time)) - Date.parse(String(a.time)) : undefined;

const TMPFS_MAGIC = 0x01021994;

/**
 * Where the steering state goes: a tmpfs, as /run (baton's default) is on a systemd host. On ext4 (this machine's
 * /tmp and /run) the rename that replaces the state file on each switch costs 0.3 ms more, idle.
 */
function stateRoot(): string {
  try {
    if (statfsSync('/dev/shm').type === TMPFS_MAGIC) return '/dev/shm';
  } catch {
    // no /dev/shm
  }
  return tmpdir();
}

/**
 * baton with one handover; steering scenarios run in a network namespace of their own, with a socket of its own
 * for each generation (the default under --steer) or one shared socket (--shared-socket).
 */
export function baton(
  name: string,
  handover: 'pidfd' | 'inherit' | 'port',
  steer: false | 'generation' | 'shared',
  drain = '500ms',
): Scenario {
  let b: Baton | undefined;
  let state: string | undefined;
  let n = 1;
  const netns = steer ? new Netns() : undefined;
  const reloads: number[] = [];
  return {
    name,
    ...(netns ? { netns } : {}),
    async start(kind, workers) {
      state = mkdtempSync(join(stateRoot(), 'baton-bench-state-'));
      const args = ['--drain', drain, '--workers', String(workers), '--handover', handover];
      args.push('--name', `bench${process.pid}`, '--state-dir', state);
      if (handover === 'inherit') args.push('--ready', 'notify');
      if (steer) args.push('--steer', '127.0.0.1:80');
      if (steer === 'shared') args.push('--shared-socket');
      if (handover !== 'port') args.push('--listen', '127.0.0.1:0');
      b = new Baton([...args, '--', process.execPath, ...SERVERS[kind]], {}, netns?.prefix ?? []);
      await b.waitFor((e) => e.event === 'active' && e.worker === workers - 1, 30_000);
      return steer ? 80 : await b.port();
    },
    supervisor: () => b?.pid,
    server: () => b?.events.filter((e) => e.event === 'active').at(-1)?.pid,
    async upgrade() {
      const t0 = performance.now();
      reloads.push(b!.events.length);
      n++;
      b!.signal('SIGHUP');
      await b!.waitFor((e) => e.event === 'upgraded' && e.generation === n, 30_000);
      const toActive = performance.now() - t0;
      // The upgrade ends with its canary window (--drain): the old generation's stop. A SIGHUP before that waits.
      await b!.waitFor((e) => e.event === 'stop' && e.generation === n - 1, 30_000, reloads.at(-1));
      return { toActive };
    },
    async stop() {
      await b!.stop();
      netns?.remove();
      if (state) rmSync(state, { recursive: true, force: true });
    },
    finish(marks) {
      // baton times its own steps (plan, spawn, activate with the slot switch; exec and record beside the child's
      // start) and logs them with `upgraded`; the child's start and grab are not among them.
      const ev = b!.events;
      marks.forEach((m, i) => {
        const g = i + 2;
        const later = ev.slice(reloads[i] ?? 0);
        const reload = later.find((e) => e.event === 'reload');
        const upgraded = later.find((e) => e.event === 'upgraded' && e.generation === g);
        m.toOldGone = ms(reload, ev.filter((e) => e.event === 'exit' && e.generation === g - 1).pop());
        if (!upgraded) return;
        const step = (k: string) => Number(upgraded[`${k}_ms`] ?? 0);
        const [plan, spawn, exec, record, activate] = ['plan', 'spawn', 'exec', 'record', 'activate'].map(step);
        m.steps = { plan: plan!, spawn: spawn!, exec, record, activate: activate!, switch: step('switch') };
        m.batonAdded = step('own');
        m.batonCpu = step('own_cpu');
      });
    },
  };
}
