// "Nothing left behind": one check for a baton run that was refused or whose generation 1 failed.
//
// Before the run it takes a snapshot; after baton has exited it lists everything the run left:
//   - processes: baton runs with BATON_TEST_MARK=<random> (every descendant inherits it); no process
//     may carry it afterwards (/proc/*/environ). One with SIGKILL pending is on its way out and is
//     given 2 s. Leftovers are reported, then killed by pid.
//   - listeners: every TCP port baton listened on (from --listen, or the `listening` lines for port 0)
//     has no LISTEN socket in the kernel's table (/proc/net/tcp, tcp6, read through the prefix so that
//     `nsenter --net=...` reads the right namespace); every unix listener path is gone.
//   - files: the pid file (and its temp file), the control socket, the steering state directory and
//     pins (bpffs/baton/NAME), each with every directory baton created for it: a path that did not
//     exist before must not exist after. (A path that existed before is the test's business.)
//   - baton's runtime directories and notify sockets: baton gets a private, empty TMPDIR and
//     XDG_RUNTIME_DIR, so `$TMPDIR/baton-*` and the default control socket are its own. The one thing
//     allowed to stay is an empty `$XDG_RUNTIME_DIR/baton`, the base all of a user's batons share.
//   - /run/netns and bpffs/baton: no new entry, except those of tests running beside this one
//     (baton-tPID-N, tPID_N[b], benchPID); baton's own NAME is checked exactly, above.
// Paths set only through --config or BATON_* variables are not predicted.

import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { cli, root } from './baton.js';

const SIGKILL_BIT = 1n << 8n;

const jsonLog = (l: string) => {
  try {
    const e = JSON.parse(l) as unknown;
    return typeof e === 'object' && e !== null && typeof (e as { event?: unknown }).event === 'string';
  } catch {
    return false;
  }
};
const TEXT_LOG = /^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (?:baton|gen=\d+) pid=\d+\] [a-z][a-z-]*(?: |$)/;
const textLog = (l: string) => TEXT_LOG.test(l);

/** A directory of the test's own (mode 1777: a baton run as another user may use it), removed after the test. */
export function scratch(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'bt-scratch-'));
  chmodSync(dir, 0o1777);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** `command`, run so that it appends its pid to $BATON_TEST_SPAWNED first: proof that baton started it. */
export function traced(...command: string[]): string[] {
  return ['sh', '-c', 'echo $$ >> "$BATON_TEST_SPAWNED"; exec "$@"', 'sh', ...command];
}

/** Values of option `name` given before `--`, as `--name VALUE` or `--name=VALUE` (`many`: --listen a b). */
function values(args: string[], name: string, many = false): string[] {
  const out: string[] = [];
  const end = args.includes('--') ? args.indexOf('--') : args.length;
  for (let i = 0; i < end; i++) {
    const a = args[i]!;
    if (a.startsWith(`--${name}=`)) out.push(a.slice(name.length + 3));
    else if (a === `--${name}`) {
      for (let j = i + 1; j < end && !args[j]!.startsWith('--') && (many || j === i + 1); j++) out.push(args[j]!);
    }
  }
  return out;
}

/** TCP ports of the `listening` lines in baton's log (text or JSON). */
function loggedPorts(stderr: string): number[] {
  const ports: number[] = [];
  for (const line of stderr.split('\n')) {
    let listener: unknown = /\] (?:listening listener|metrics .*address)=(\S+)/.exec(line)?.[1];
    if (listener === undefined && jsonLog(line)) {
      const e = JSON.parse(line) as { event: string; listener?: unknown; address?: unknown };
      if (e.event === 'listening') listener = e.listener;
      if (e.event === 'metrics') listener = e.address;
    }
    if (typeof listener === 'string' && !listener.startsWith('unix:')) {
      ports.push(Number(listener.slice(listener.lastIndexOf(':') + 1)));
    }
  }
  return ports;
}

/** `path` and every ancestor of it that does not exist now: what creating `path` would add. */
function absentChain(path: string): string[] {
  const chain: string[] = [];
  for (let p = path; !existsSync(p) && p !== dirname(p); p = dirname(p)) chain.push(p);
  return chain;
}

function entries(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Ports with a LISTEN socket in the kernel's table, read through `prefix` (its network namespace). */
function listeningPorts(prefix: string[]): Set<number> {
  const files = ['/proc/net/tcp', '/proc/net/tcp6'];
  const text = prefix.length
    ? spawnSync(prefix[0]!, [...prefix.slice(1), 'cat', ...files], { encoding: 'utf8' }).stdout
    : files.map((f) => (existsSync(f) ? readFileSync(f, 'utf8') : '')).join('\n');
  const ports = new Set<number>();
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[3] === '0A') ports.add(parseInt(f[1]!.split(':')[1]!, 16)); // 0A: TCP_LISTEN
  }
  return ports;
}

/** Pids whose environment holds `needle`. */
function carrying(needle: Buffer): number[] {
  const out: number[] = [];
  for (const d of entries('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/environ`).includes(needle)) out.push(Number(d));
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

function dying(pid: number): boolean {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const mask = (k: string) => BigInt(`0x${new RegExp(`^${k}:\\s*([0-9a-f]+)`, 'm').exec(status)?.[1] ?? '0'}`);
    return /^State:\s*[ZX]/m.test(status) || ((mask('SigPnd') | mask('ShdPnd')) & SIGKILL_BIT) !== 0n;
  } catch {
    return true;
  }
}

function describe(pid: number): string {
  try {
    return `pid ${pid} (${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0+$/, '').replace(/\0/g, ' ')})`;
  } catch {
    return `pid ${pid}`;
  }
}

const testNetns = /^baton-t\d+-\d+$/; // test/helpers/netns.ts
// test/helpers/steer.ts (and a world's second name, NAMEb), test/bench/scenarios.ts
const testSteerName = /^t\d+_\d+b?$|^bench\d+$/;

export interface WatchOptions {
  /** Extra environment for baton (merged over this process's; undefined removes a variable). */
  env?: Record<string, string | undefined>;
  /** Command baton runs under (setpriv, nsenter, ...); the kernel's socket table is read through it too. */
  prefix?: string[];
}

/**
 * The snapshot of one run. Give baton `env`; once it has exited, `check(stderr)` lists what was left
 * behind (and kills leftover processes, removes the private directories). Call `check` exactly once.
 */
export class Leftovers {
  readonly env: NodeJS.ProcessEnv;
  private readonly mark = randomBytes(12).toString('hex');
  private readonly base = mkdtempSync(join(tmpdir(), 'bt-leftovers-'));
  private readonly tmp = join(this.base, 'tmp');
  private readonly run = join(this.base, 'run');
  private readonly spawnedFile = join(this.base, 'spawned');
  private readonly prefix: string[];
  private readonly paths: string[] = [];
  private readonly ports: number[] = [];
  private readonly pidFile?: string;
  private readonly pidDir: string[] = [];
  private readonly shared: Array<{ dir: string; before: Set<string>; ours: RegExp }> = [];

  constructor(args: string[], o: WatchOptions = {}) {
    this.prefix = o.prefix ?? [];
    for (const d of [this.tmp, this.run]) mkdirSync(d, { mode: 0o1777 });
    for (const d of [this.base, this.tmp, this.run]) chmodSync(d, d === this.base ? 0o755 : 0o1777);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      TMPDIR: this.tmp,
      XDG_RUNTIME_DIR: this.run,
      BATON_TEST_MARK: this.mark,
      BATON_TEST_SPAWNED: this.spawnedFile,
    };
    for (const [k, v] of Object.entries(o.env ?? {})) {
      if (v === undefined) delete env[k];
      else env[k] = v;
    }
    this.env = env;

    const given = values(args, 'listen', true);
    // [NAME=]ADDRESS, as baton reads it
    const listen = given.map((v) => (/^[^[]+=/.test(v) && !v.startsWith('unix:') ? v.slice(v.indexOf('=') + 1) : v));
    const addresses = [...listen, ...values(args, 'metrics')];
    const unix = addresses.filter((v) => v.startsWith('unix:')).map((v) => v.slice(5));
    const busy = listeningPorts(this.prefix);
    for (const v of addresses.filter((l) => !l.startsWith('unix:'))) {
      const port = Number(v.slice(v.lastIndexOf(':') + 1));
      if (port > 0 && !busy.has(port)) this.ports.push(port);
    }
    const pidFile = values(args, 'pid-file').pop();
    const control = values(args, 'control').pop() ?? (pidFile ? `${pidFile.replace(/\.pid$/, '')}.sock` : undefined);
    const steer = values(args, 'steer', true);
    const steering = steer.length > 0 || values(args, 'handover').includes('port');
    const derived = (given[0] ?? steer[0] ?? 'baton').replace(/[^A-Za-z0-9_-]+/g, '_').replace(/^_+|_+$/g, '');
    const name = values(args, 'name').pop() ?? derived;
    const bpffs = join(env.BATON_BPFFS ?? '/sys/fs/bpf', 'baton');
    const named = [...unix, pidFile, control];
    if (steering) named.push(values(args, 'state-dir').pop() ?? `/run/baton/${name}`, join(bpffs, name));
    for (const p of named) if (p) this.paths.push(...absentChain(p));
    if (pidFile) {
      this.pidFile = pidFile;
      this.pidDir = entries(dirname(pidFile));
    }
    this.shared.push({ dir: '/run/netns', before: new Set(entries('/run/netns')), ours: testNetns });
    this.shared.push({ dir: bpffs, before: new Set(entries(bpffs)), ours: testSteerName });
  }

  /** Pids the traced command recorded: each process of the command that baton started. */
  spawned(): number[] {
    if (!existsSync(this.spawnedFile)) return [];
    return readFileSync(this.spawnedFile, 'utf8').split('\n').filter(Boolean).map(Number);
  }

  /** After baton exited: everything the run left behind (empty when nothing). */
  async check(stderr: string): Promise<string[]> {
    const problems: string[] = [];
    try {
      const listening = listeningPorts(this.prefix); // before processes(), which kills what holds them
      for (const port of new Set([...this.ports, ...loggedPorts(stderr)])) {
        if (listening.has(port)) problems.push(`a socket still listens on port ${port}`);
      }
      for (const p of this.paths) if (existsSync(p)) problems.push(`left behind: ${p}`);
      if (this.pidFile) {
        const temp = `${basename(this.pidFile)}.`;
        for (const e of entries(dirname(this.pidFile))) {
          const ours = e.startsWith(temp) && /^\d+\.tmp$/.test(e.slice(temp.length));
          if (ours && !this.pidDir.includes(e)) problems.push(`left behind: pid temp file ${e}`);
        }
      }
      const inside = (dir: string) => entries(dir).join(', ') || 'empty';
      for (const e of entries(this.tmp)) {
        if (e.startsWith('baton-')) problems.push(`left behind in TMPDIR: ${e} (${inside(join(this.tmp, e))})`);
      }
      for (const e of entries(this.run)) {
        // $XDG_RUNTIME_DIR/baton is shared by every baton of the user (default control sockets): it may
        // stay, empty; removing it would race another baton starting.
        if (e === 'baton' && entries(join(this.run, e)).length === 0) continue;
        problems.push(`left behind in XDG_RUNTIME_DIR: ${e} (${inside(join(this.run, e))})`);
      }
      for (const s of this.shared) {
        for (const e of entries(s.dir)) {
          if (!s.before.has(e) && !s.ours.test(e)) problems.push(`new entry left in ${s.dir}: ${e}`);
        }
      }
      problems.push(...(await this.processes()));
    } finally {
      rmSync(this.base, { recursive: true, force: true });
    }
    return problems;
  }

  /** Processes that carry the mark, after giving those with SIGKILL pending up to 2 s; then killed. */
  private async processes(): Promise<string[]> {
    const needle = Buffer.from(`BATON_TEST_MARK=${this.mark}\0`);
    const deadline = Date.now() + 2000;
    let left = carrying(needle);
    while (left.length > 0 && left.every(dying) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      left = carrying(needle);
    }
    const found = left.map((pid) => `process left behind: ${describe(pid)}`);
    for (const pid of left) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    return found;
  }
}

export interface RefuseOptions extends WatchOptions {
  /** Generation 1 was started (the command must be `traced`): the refusal is its failure. */
  spawns?: boolean;
  /**
   * baton had started logging when it refused: its own log lines (the format --log-format asks for)
   * may come before the `error:` and `hint:` lines. Default: `spawns`. Otherwise stderr is exactly
   * those two lines.
   */
  logged?: boolean;
  /** Bound on the whole run (default 30 s); baton's process group is killed after it. */
  timeoutMs?: number;
}

export interface Refusal {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Pids the traced command recorded. */
  spawned: number[];
}

// At most two batons at a time per test file: a file's tests all start at once, on two cores.
let running = 0;
const queue: Array<() => void> = [];
async function slot(): Promise<() => void> {
  if (running >= 2) await new Promise<void>((r) => queue.push(r));
  running++;
  return () => {
    running--;
    queue.shift()?.();
  };
}

/** Runs `body` when fewer than two batons of this file run (refuses() and runBaton() count too). */
export async function limited<T>(body: () => Promise<T>): Promise<T> {
  const release = await slot();
  try {
    return await body();
  } finally {
    release();
  }
}

/** Runs baton (`cli ARGS`, through `prefix`) to its exit, bounded; stdout, stderr and status. */
export async function runBaton(args: string[], env: NodeJS.ProcessEnv, prefix: string[] = [], timeoutMs = 30_000) {
  const release = await slot();
  try {
    const child = spawn(prefix[0] ?? cli, [...prefix.slice(1), ...(prefix.length ? [cli] : []), ...args], {
      cwd: root,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // a group of its own: the timeout kills baton and whatever shares its group
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone
      }
    }, timeoutMs);
    const close = new Promise<true>((r) => child.once('close', () => r(true)));
    type Status = [number | null, NodeJS.Signals | null];
    const [code, signal] = await new Promise<Status>((r) => child.once('exit', (c, s) => r([c, s])));
    clearTimeout(timer);
    // Its output ends when the last holder of the pipes is gone; a process left behind may hold them.
    let wait: NodeJS.Timeout | undefined;
    const closed = await Promise.race([close, new Promise<false>((r) => (wait = setTimeout(() => r(false), 2000)))]);
    clearTimeout(wait);
    if (!closed) {
      child.stdout.destroy();
      child.stderr.destroy();
    }
    return { code, signal, stdout, stderr, timedOut, closed };
  } finally {
    release();
  }
}

/**
 * Runs baton to its exit and asserts a clean refusal: exit `code`; stderr exactly one `error:` line
 * matching `error` and one `hint:` line matching `hint` (the last two lines; before them only baton's
 * own log lines, and only if `logged`); generation 1 started or not, as `spawns` says (observed
 * through `traced`; an untraced command must not be logged as spawned either); nothing left behind.
 */
export async function refuses(
  t: ExecutionContext,
  args: string[],
  code: number,
  error: RegExp,
  hint: RegExp,
  o: RefuseOptions = {},
): Promise<Refusal> {
  const watch = new Leftovers(args, o);
  const r = await runBaton(args, watch.env, o.prefix, o.timeoutMs);
  const spawned = watch.spawned();
  const left = await watch.check(r.stderr);
  t.false(r.timedOut, `baton did not exit within ${o.timeoutMs ?? 30_000} ms`);
  t.true(r.closed, "baton's stdout and stderr were still open after it exited");
  t.is(r.code, code, r.stderr);
  const lines = r.stderr.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const [errorLine, hintLine] = lines.slice(-2);
  t.is(lines.filter((l) => l.startsWith('error:')).length, 1, r.stderr);
  t.is(lines.filter((l) => l.startsWith('hint:')).length, 1, r.stderr);
  t.regex(errorLine ?? '', /^error: /, r.stderr);
  t.regex(hintLine ?? '', /^hint: /, r.stderr);
  t.regex((errorLine ?? '').slice(7), error);
  t.regex((hintLine ?? '').slice(6), hint);
  const before = lines.slice(0, -2);
  if (o.logged ?? o.spawns ?? false) {
    const json = (values(args, 'log-format').pop() ?? o.env?.BATON_LOG_FORMAT) === 'json';
    const others = before.filter((l) => !(json ? jsonLog(l) : textLog(l)));
    t.deepEqual(others, [], `only baton's ${json ? 'JSON' : 'text'} log lines before error: and hint:`);
  } else {
    t.deepEqual(before, [], 'stderr is exactly the error: and hint: lines');
  }
  if (o.spawns) {
    t.true(spawned.length > 0, 'generation 1 was started (the traced command ran)');
  } else {
    t.deepEqual(spawned, [], 'nothing was started');
    t.notRegex(r.stderr, /"event":"spawn"|\] spawn /, 'nothing was started');
  }
  t.deepEqual(left, [], 'nothing left behind');
  return { code: r.code, signal: r.signal, stdout: r.stdout, stderr: r.stderr, spawned };
}
