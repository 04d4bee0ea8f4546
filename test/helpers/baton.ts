import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { request } from '../../supervisor/control/client.js';
import type { Status } from '../../supervisor/status.js';

export const root = fileURLToPath(new URL('../..', import.meta.url));
export const cli = `${root}dist/supervisor/cli.js`;
export const fixture = `${root}test/fixtures/server.mjs`;

export interface LogEvent {
  event: string;
  generation?: number;
  pid: number;
  message?: string;
  [k: string]: unknown;
}

/** How long the exit of baton waits for its stderr to end. */
const STDERR_END_MS = 500;

/**
 * The test runner's environment less what would tie a baton under test to the runner's own
 * supervisor: a systemd NOTIFY_SOCKET (every baton would tell it READY=1 and MAINPID), socket
 * activation, baton's own options. A test that wants one passes it explicitly.
 */
export function inherited(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (/^(NOTIFY_SOCKET|LISTEN_(PID|FDS|FDNAMES)|BATON_.*)$/.test(k)) delete env[k];
  return env;
}

/** A real baton process with --log-format json; its events are parsed as they arrive. */
export class Baton {
  readonly child: ChildProcess;
  readonly events: LogEvent[] = [];
  stderr = '';
  stdout = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private listeners: Array<() => void> = [];

  /** Its control socket: a path of its own unless the args name one (tests run batons side by side). */
  readonly control: string;

  /**
   * `prefix` runs baton through another command, e.g. nsenter into a test's network namespace; `entry` is
   * the cli.js to run (another build's, or this one's through another path); `stderr`: an fd for baton's
   * stderr instead of a pipe read here (then `events` stays empty).
   */
  constructor(args: string[], env: NodeJS.ProcessEnv = {}, prefix: string[] = [], entry = cli, stderr?: number) {
    const named = args.includes('--control') || args.includes('--pid-file');
    this.control = named ? '' : join(mkdtempSync(join(tmpdir(), 'baton-ctl-')), 'control.sock');
    // The entry point as installed, started by its shebang.
    const argv = [entry, '--log-format', 'json', ...(named ? [] : ['--control', this.control]), ...args];
    this.child = spawn(prefix[0] ?? argv[0]!, [...prefix.slice(1), ...(prefix.length ? argv : argv.slice(1))], {
      cwd: root,
      env: { ...inherited(), ...env },
      stdio: ['ignore', 'pipe', stderr ?? 'pipe'],
    });
    let partial = '';
    this.child.stderr?.on('data', (d: Buffer) => {
      this.stderr += d;
      partial += d;
      const lines = partial.split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        if (line.startsWith('{')) {
          try {
            this.events.push(JSON.parse(line) as LogEvent);
          } catch {
            // a child's line that looks like JSON
          }
        }
      }
      for (const l of this.listeners) l();
    });
    this.child.stdout!.on('data', (d: Buffer) => (this.stdout += d));
    // 'exit' may come before the last lines baton wrote were read: those wait until its stderr ends, or a short
    // while where a child of baton's still holds the pipe open.
    const ended = new Promise<void>((resolve) =>
      this.child.stderr ? this.child.stderr.once('end', resolve) : resolve(),
    );
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        const done = () => resolve({ code, signal });
        const late = setTimeout(done, STDERR_END_MS);
        void ended.then(() => {
          clearTimeout(late);
          done();
        });
      }),
    );
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Resolves with the first event (counting from `from`) matching `match`. */
  waitFor(match: (e: LogEvent) => boolean, timeout = 20_000, from = 0): Promise<LogEvent> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const e = this.events.slice(from).find(match);
        if (e) {
          cleanup();
          resolve(e);
        }
      };
      // A worker whose event loop was busy (a spawnSync) runs timers before it reads what waits in
      // the pipe: look at baton's output once more, after the poll phase, before giving up.
      const timer = setTimeout(
        () =>
          setImmediate(() => {
            check();
            cleanup();
            reject(new Error(`no matching event within ${timeout}ms; stderr:\n${this.stderr}`));
          }),
        timeout,
      );
      const onExit = () =>
        setTimeout(() => {
          check();
          cleanup();
          reject(new Error(`baton exited before the event; stderr:\n${this.stderr}`));
        }, 50);
      const cleanup = () => {
        clearTimeout(timer);
        this.listeners = this.listeners.filter((l) => l !== check);
        this.child.off('exit', onExit);
      };
      this.listeners.push(check);
      this.child.once('exit', onExit);
      check();
    });
  }

  event(name: string, generation?: number, timeout?: number): Promise<LogEvent> {
    return this.waitFor((e) => e.event === name && (generation === undefined || e.generation === generation), timeout);
  }

  /** The port of listener `i`, from the `listening` event. */
  async port(i = 0): Promise<number> {
    await this.event('config');
    const l = this.events.filter((e) => e.event === 'listening')[i]!;
    return Number(String(l.listener).split(':').pop());
  }

  signal(sig: NodeJS.Signals): void {
    this.child.kill(sig);
  }

  /** SIGHUP, then the `active` event of generation `n`. */
  async upgradeTo(n: number, timeout?: number): Promise<void> {
    this.signal('SIGHUP');
    await this.event('active', n, timeout);
  }

  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.signal('SIGTERM');
    return this.exited;
  }

  /** Generations as the log tells them: the last state each reached. */
  states(): Map<number, string> {
    const m = new Map<number, string>();
    for (const e of this.events) {
      if (e.generation === undefined) continue;
      if (['spawn', 'ready', 'active', 'draining', 'failed'].includes(e.event))
        m.set(e.generation, e.event === 'spawn' ? 'starting' : e.event);
      if (e.event === 'exit' && m.get(e.generation) !== 'failed') m.set(e.generation, 'exited');
    }
    return m;
  }
}

/** Direct children of `pid`, less its keeper. */
export function childrenOf(pid: number): number[] {
  return allChildrenOf(pid).filter((kid) => !isKeeper(kid));
}

/** The keeper a pidfd baton runs (native/keeper-ARCH), if it runs one. */
export function keeperOf(pid: number): number | undefined {
  return keepersOf(pid)[0];
}

/** Every keeper baton runs (under --steer, one for each generation socket). */
export function keepersOf(pid: number): number[] {
  return allChildrenOf(pid).filter(isKeeper);
}

function isKeeper(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').startsWith('keeper-');
  } catch {
    return false;
  }
}

function allChildrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const kids = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
    if (kids) out.push(...kids.split(' ').map(Number));
  }
  return out;
}

export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * `baton <command> --control <path>`: exit code and output. Given the Baton itself, a failed command's
 * stderr ends with that baton's exit state and log, so an assertion shows whether baton was there.
 */
export async function ctl(
  target: Baton | string,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const control = typeof target === 'string' ? target : target.control;
  try {
    const r = await promisify(execFile)(process.execPath, [cli, ...args, '--control', control], { encoding: 'utf8' });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    const b =
      typeof target === 'string'
        ? ''
        : `[baton exit ${target.child.exitCode}/${target.child.signalCode}]\n${target.stderr}`;
    return { code: e.code, stdout: e.stdout, stderr: `${e.stderr}${b}` };
  }
}

/** `baton status` from the control socket of `target` (a Baton, or a socket path); an error reply throws. */
export async function statusOf(target: Baton | string, timeoutMs = 5000): Promise<Status> {
  const reply = await request(typeof target === 'string' ? target : target.control, { command: 'status' }, timeoutMs);
  if (!reply.ok) throw new Error(JSON.stringify(reply));
  return reply.status as Status;
}
