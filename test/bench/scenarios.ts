import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Baton, root, type LogEvent } from '../helpers/baton.js';
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
} as const;
export type ServerKind = keyof typeof SERVERS;

/** One upgrade as the scenario saw it; ms. */
export interface UpgradeMark {
  at: number; // since the load started
  toActive?: number;
  toOldGone?: number;
  batonAdded?: number;
}

/** A way to run the server and upgrade it. */
export interface Scenario {
  name: string;
  netns?: Netns;
  start(server: ServerKind, workers: number): Promise<number>;
  upgrade(): Promise<Omit<UpgradeMark, 'at'>>;
  stop(): Promise<void>;
  /** Called after stop: what only the log could tell (old generation gone, baton's own time). */
  finish?(marks: UpgradeMark[]): void;
}


async function accepting(port: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => (s.destroy(), resolve(true))).on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`port ${port} never accepted`);
    await sleep(20);
  }
}

/** The load generator, in its own process (inside the scenario's network namespace if any). */
export async function startLoad(port: number, keepAlive: boolean, maxMs: number, netns?: Netns): Promise<{ stop: () => Promise<LoadResult>; startedAt: number }> {
  const opts = JSON.stringify({ port, keepAlive, concurrency: 8, maxMs, maxRequests: 2_000_000, record: true });
  const argv = [process.execPath, '--import', 'tsx', netclient, 'load', opts];
  const prefix = netns?.prefix ?? [];
  const c = spawn(prefix[0] ?? argv[0]!, [...prefix.slice(1), ...(prefix.length ? argv : argv.slice(1))], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  c.stdout.on('data', (d) => (out += d));
  await new Promise<void>((resolve) => c.stdout.on('data', () => out.includes('started') && resolve()));
  const startedAt = performance.now();
  const done = new Promise<LoadResult>((resolve) => c.once('exit', () => resolve(JSON.parse(out.split('\n')[1]!) as LoadResult)));
  return {
    startedAt,
    stop: () => {
      c.kill('SIGTERM');
      return done;
    },
  };
}

/** The server alone (no upgrades), or stopped and started again at each upgrade. */
export function plain(name: 'alone' | 'stop-start'): Scenario {
  let child: ChildProcess | undefined;
  let port = 0;
  let server: readonly string[] = [];
  const launch = async () => {
    child = spawn(process.execPath, [...server], { env: { ...process.env, PORT: String(port) }, stdio: 'ignore' });
    await accepting(port);
  };
  const kill = async () => {
    const c = child!;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    await gone;
  };
  return {
    name,
    async start(kind) {
      server = SERVERS[kind];
      port = await freePort();
      await launch();
      return port;
    },
    async upgrade() {
      if (name === 'alone') return {};
      const t0 = performance.now();
      await kill();
      const gone = performance.now() - t0;
      await launch();
      return { toActive: performance.now() - t0, toOldGone: gone };
    },
    stop: kill,
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
      writeFileSync(eco, JSON.stringify({ apps: [{ name: 'bench', script, args, exec_mode: 'cluster', instances, env: { PORT: String(port) }, kill_signal: 'SIGTERM', kill_timeout: 5000, listen_timeout: 8000 }] }));
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
    },
  };
}

const ms = (a: LogEvent | undefined, b: LogEvent | undefined) => (a && b ? Date.parse(String(b.time)) - Date.parse(String(a.time)) : undefined);

/** baton with one handover; steering scenarios run in a network namespace of their own. */
export function baton(name: string, handover: 'pidfd' | 'inherit' | 'port', steer: boolean): Scenario {
  let b: Baton | undefined;
  let n = 1;
  const netns = steer ? new Netns() : undefined;
  const reloads: number[] = [];
  return {
    name,
    ...(netns ? { netns } : {}),
    async start(kind, workers) {
      const args = ['--drain', '500ms', '--workers', String(workers), '--handover', handover, '--name', `bench${process.pid}`, '--state-dir', mkdtempSync(join(tmpdir(), 'baton-bench-state-'))];
      if (handover === 'inherit') args.push('--ready', 'notify');
      if (steer) args.push('--steer', '127.0.0.1:80');
      if (handover !== 'port') args.push('--listen', '127.0.0.1:0');
      b = new Baton([...args, '--', process.execPath, ...SERVERS[kind]], {}, netns?.prefix ?? []);
      await b.waitFor((e) => e.event === 'active' && e.worker === workers - 1, 30_000);
      return steer ? 80 : await b.port();
    },
    async upgrade() {
      const t0 = performance.now();
      reloads.push(b!.events.length);
      n++;
      b!.signal('SIGHUP');
      await b!.waitFor((e) => e.event === 'upgraded' && e.generation === n, 30_000);
      return { toActive: performance.now() - t0 };
    },
    async stop() {
      await b!.stop();
      netns?.remove();
    },
    finish(marks) {
      // From baton's own log: reload → spawn, ready → active and the slot switch are baton's time.
      const ev = b!.events;
      marks.forEach((m, i) => {
        const g = i + 2;
        const from = reloads[i] ?? 0;
        const find = (event: string, gen: number) => ev.slice(from).find((e) => e.event === event && e.generation === gen);
        const reload = ev.slice(from).find((e) => e.event === 'reload');
        const spawned = find('spawn', g);
        const ready = find('ready', g);
        const active = find('active', g);
        const switched = find('switch', g);
        const gone = ev.filter((e) => e.event === 'exit' && e.generation === g - 1).pop();
        m.toOldGone = ms(reload, gone);
        // reload → spawn start is the loop picking the request up; spawn_ms is fork + exec measured by baton.
        const added = Math.max(0, (ms(reload, spawned) ?? 0) - Number(spawned?.spawn_ms ?? 0)) + Number(spawned?.spawn_ms ?? 0) + (ms(ready, active) ?? 0) + Number(switched?.switch_us ?? 0) / 1000;
        m.batonAdded = Math.round(added * 100) / 100;
      });
    },
  };
}
