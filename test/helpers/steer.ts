import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { Baton, root } from './baton.js';
import { gaps, type LoadOptions, type LoadResult } from './load.js';
import { exclusive } from './lock.js';
import { Netns } from './netns.js';

const netclient = `${root}test/helpers/netclient.ts`;
export const bpffs = process.env.BATON_BPFFS ?? '/sys/fs/bpf';
let names = 0;

/** A load run inside the namespace: `origin` is the wall-clock time (ms since the epoch) its samples count from. */
export type NetLoad = LoadResult & { origin: number };

/** Wall-clock now in ms (sub-ms precision), comparable with a NetLoad's `origin`. */
export const wallNow = (): number => performance.timeOrigin + performance.now();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A steering test's world: its own network namespace, steering name and state directory. */
export class SteerWorld {
  readonly ns = new Netns();
  readonly name = `t${process.pid}_${++names}`;
  readonly stateDir = mkdtempSync(join(tmpdir(), 'baton-state-'));
  readonly batons: Baton[] = [];

  get pins(): string {
    return join(bpffs, 'baton', this.name);
  }

  pinned(): boolean {
    return existsSync(this.pins);
  }

  /** The pin files and the state directory's files, to compare before and after something that must not touch them. */
  owned(): { pins: string[] | 'none'; state: string[] | 'none' } {
    const list = (dir: string) => (existsSync(dir) ? readdirSync(dir).sort() : 'none');
    return { pins: list(this.pins), state: list(this.stateDir) };
  }

  /** argv that runs `command` inside the namespace. */
  inside(...command: string[]): string[] {
    return [...this.ns.prefix, ...command];
  }

  /** The arguments baton() adds before `args`: this world's steering name and state directory. */
  get batonArgs(): string[] {
    return ['--name', this.name, '--state-dir', this.stateDir];
  }

  /** A baton in the namespace; `entry`: the cli.js to run (default the repo's build). */
  baton(args: string[], env: NodeJS.ProcessEnv = {}, entry?: string): Baton {
    const b = new Baton([...this.batonArgs, ...args], env, this.ns.prefix, entry);
    this.batons.push(b);
    return b;
  }

  /** One echo round trip to each target from inside the namespace. */
  echo(targets: string[]): Promise<Record<string, string>> {
    const c = this.client(['echo', ...targets]);
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    return new Promise((resolve, reject) =>
      c.once('exit', (code) => {
        if (code === 0) resolve(JSON.parse(out) as Record<string, string>);
        else reject(new Error(`netclient echo exited ${code}: ${c.errors()}`));
      }),
    );
  }

  /** HTTP load (4 loops, every request recorded) on `port` inside the namespace until stop() or `maxMs`. */
  hammer(port: number, keepAlive = false, maxMs = 60_000): Promise<{ stop: () => Promise<NetLoad> }> {
    return this.start(['hammer', String(port), String(keepAlive), String(maxMs)]);
  }

  /** HTTP load with options `o` inside the namespace, until stop() or its bounds. */
  run(o: LoadOptions): Promise<{ stop: () => Promise<NetLoad> }> {
    return this.start(['load', JSON.stringify(o)]);
  }

  /** A bounded HTTP load inside the namespace (give maxRequests and/or maxMs), run to its end. */
  async load(o: LoadOptions): Promise<NetLoad> {
    const l = await this.start(['load', JSON.stringify(o)]);
    return l.result;
  }

  private client(args: string[]) {
    const [command, ...prefix] = this.inside(process.execPath, '--import', 'tsx', netclient, ...args);
    const c = spawn(command!, prefix, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    c.stderr.on('data', (d) => (err += d));
    return Object.assign(c, { errors: () => err });
  }

  private async start(args: string[]): Promise<{ stop: () => Promise<NetLoad>; result: Promise<NetLoad> }> {
    const c = this.client(args);
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    const result = new Promise<NetLoad>((resolve, reject) =>
      c.once('exit', (code, signal) => {
        const line = out.split('\n')[1];
        if (code !== 0 || !line) return reject(new Error(`netclient exited ${code ?? signal}: ${c.errors()}`));
        type Maps = 'generations' | 'workers';
        type Json = Omit<NetLoad, Maps> & Record<Maps, Record<string, number>>;
        const r = JSON.parse(line) as Json;
        const map = (o: Record<string, number>) => new Map(Object.entries(o).map(([k, v]) => [Number(k), v]));
        resolve({ ...r, generations: map(r.generations), workers: map(r.workers) });
      }),
    );
    await Promise.race([
      new Promise<void>((resolve) => c.stdout.on('data', () => out.includes('started') && resolve())),
      result.then(() => undefined),
    ]);
    return {
      result,
      stop: () => {
        c.kill('SIGTERM');
        return result;
      },
    };
  }

  /** Pids of the processes in the namespace (every one of them started by this test). */
  processes(): number[] {
    const ns = `net:[${this.ns.inode}]`;
    const out: number[] = [];
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        if (readlinkSync(`/proc/${d}/ns/net`) === ns) out.push(Number(d));
      } catch {
        // gone, or a zombie
      }
    }
    return out;
  }

  /** LISTEN sockets in the namespace, as "ADDRESS_HEX:PORT inode". */
  listening(): string[] {
    const [command, ...args] = this.inside('cat', '/proc/net/tcp', '/proc/net/tcp6');
    const r = spawnSync(command!, args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`cannot read the namespace's sockets: ${r.stderr}`);
    return r.stdout
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f[3] === '0A')
      .map((f) => `${f[1]!.split(':')[0]}:${parseInt(f[1]!.split(':')[1]!, 16)} ${f[9]}`)
      .sort();
  }

  /**
   * Kills what is left: the batons, then every process still in the namespace (generations a killed
   * baton left behind), by pid. Removes the namespace, the pins and the state.
   */
  async close(): Promise<void> {
    for (const b of this.batons) {
      if (b.child.exitCode === null && b.child.signalCode === null) b.signal('SIGKILL');
      await b.exited;
    }
    const deadline = Date.now() + 5000;
    for (let left = this.processes(); left.length > 0 && Date.now() < deadline; left = this.processes()) {
      for (const pid of left) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
      await sleep(20);
    }
    this.ns.remove();
    rmSync(this.pins, { recursive: true, force: true });
    rmSync(this.stateDir, { recursive: true, force: true });
  }
}

/** /proc/PID/stat's state letter, or undefined once the process is gone (reaped). */
export function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

/**
 * Resolves with the wall-clock time at which process `pid` was first seen exited (a zombie or gone),
 * polling /proc every 2 ms; rejects after `timeoutMs`.
 */
export async function exitOf(pid: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const s = procState(pid);
    if (s === undefined || s === 'Z' || s === 'X') return wallNow();
    await sleep(2);
  }
  throw new Error(`pid ${pid} did not exit within ${timeoutMs} ms`);
}

/** Runs `body` in a world of its own; `loaded`: holds the machine-wide load lock for the whole test. */
export async function inWorld(loaded: boolean, body: (w: SteerWorld) => Promise<void>): Promise<void> {
  const release = loaded ? await exclusive() : undefined;
  const w = new SteerWorld();
  try {
    await body(w);
  } finally {
    await w.close();
    release?.();
  }
}

/** Generations that answered, in order. */
export const answered = (r: NetLoad) => [...r.generations.keys()].sort((a, b) => a - b);

/** A short bounded load after the upgrades: every request answered, by generation `n` only. */
export async function servesOnly(t: ExecutionContext, w: SteerWorld, port: number, keepAlive: boolean, n: number) {
  const r = await w.load({ port, keepAlive, concurrency: 4, maxRequests: 200, maxMs: 10_000 });
  t.deepEqual(gaps(r), [], 'the load after the last upgrade');
  t.is(r.ok, 200);
  t.deepEqual(answered(r), [n], `only generation ${n} answers afterwards`);
}

/** Pids of every process of generations `from`..`to`, from their `active` events. */
export const pidsOf = (b: Baton, from: number, to: number) =>
  b.events.filter((e) => e.event === 'active' && e.generation! >= from && e.generation! <= to).map((e) => e.pid);
