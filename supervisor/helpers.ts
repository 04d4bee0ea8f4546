import { spawn } from 'node:child_process';
import { track } from './children.js';
import type { Logger } from './log.js';
import { appEnv, asUser, type RunAs } from './run-as.js';
import { stopScripts } from './run-script.js';
import { withChildOomScore } from './sys/oom.js';
import { signalGroup } from './sys/process.js';

/** What baton runs for itself besides generations: the --check preflight, `probe:` readiness and --health. */
export type HelperKind = 'check' | 'probe' | 'health';

export interface HelperOptions {
  /** Added to the environment a generation would get (less its own variables). */
  env?: Record<string, string>;
  /** The process group is killed after this long (ms). */
  timeoutMs?: number;
  /** The process group is killed when this aborts. */
  signal?: AbortSignal;
  /** The generation a probe is for (shown by status). */
  generation?: number;
  /** Keep the end of stdout and stderr (else both go nowhere). */
  output?: boolean;
  /** Where it runs (a generation's release directory); baton's own working directory by default. */
  cwd?: string;
}

export interface HelperResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** Killed because baton stops, or never started because it does. */
  stopped: boolean;
  /** The last OUTPUT_MAX bytes of stdout and stderr, interleaved. */
  output: string;
}

/** A running helper, as `baton status` shows it. */
export interface HelperInfo {
  kind: HelperKind;
  pid: number;
  command: string;
  generation?: number;
  ageMs: number;
}

const OUTPUT_MAX = 8192;
/** After the shell exits, how long its output may still take to arrive. */
const DRAIN_MS = 100;

/**
 * The shell commands baton runs for itself. Each runs in a process group of its own, which is killed
 * (SIGKILL) on timeout, on abort, when baton stops, and after the shell exits (whatever it left
 * behind): nothing outlives the run, and `status` lists what runs now.
 */
export class Helpers {
  private readonly running = new Map<number, Omit<HelperInfo, 'ageMs'> & { startedAt: number }>();
  private closed = false;

  /** `user`: --user, whom helpers run as, like the generations they check. */
  constructor(
    private readonly log: Logger,
    private readonly user?: RunAs,
  ) {}

  run(kind: HelperKind, command: string, o: HelperOptions = {}): Promise<HelperResult> {
    const result = { code: null, signal: null, timedOut: false, stopped: false, output: '' };
    if (this.closed || o.signal?.aborted) return Promise.resolve({ ...result, stopped: this.closed });
    const { file, args, env } = asUser(this.user, '/bin/sh', ['-c', command], { ...appEnv(this.user), ...o.env });
    const child = withChildOomScore(() =>
      spawn(file, args, {
        detached: true, // a process group of its own (pgid = pid), killed as one
        cwd: o.cwd,
        env,
        stdio: ['ignore', o.output ? 'pipe' : 'ignore', o.output ? 'pipe' : 'ignore'],
      }),
    );
    const pid = child.pid;
    let output = '';
    const keep = (d: Buffer) => {
      output = (output + d.toString('utf8')).slice(-OUTPUT_MAX);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    let timedOut = false;
    const kill = () => signalGroup(pid ?? 0, 'SIGKILL');
    const expire = () => {
      timedOut = kill();
    };
    const timer = o.timeoutMs === undefined ? undefined : setTimeout(expire, o.timeoutMs);
    o.signal?.addEventListener('abort', kill, { once: true });
    if (pid !== undefined) {
      const { generation } = o;
      this.running.set(pid, {
        kind,
        pid,
        command,
        startedAt: performance.now(),
        ...(generation ? { generation } : {}),
      });
    }
    const exited = new Promise<HelperResult>((resolve) => {
      const done = async (code: number | null, signal: NodeJS.Signals | null, error?: Error) => {
        clearTimeout(timer);
        o.signal?.removeEventListener('abort', kill);
        if (pid !== undefined) this.running.delete(pid);
        kill(); // the shell is gone; what it started in its group goes with it
        if (o.output && !error) await new Promise((r) => setTimeout(r, DRAIN_MS));
        child.stdout?.destroy();
        child.stderr?.destroy();
        const stopped = this.closed && !timedOut;
        resolve({ code, signal, timedOut, stopped, output: error ? error.message : output });
      };
      child.once('exit', (code, signal) => void done(code, signal));
      child.once('error', (err) => {
        if (pid === undefined) void done(127, null, err); // spawn failed: no process
      });
    });
    track(pid, exited);
    return exited;
  }

  /** What runs now, oldest first. */
  list(): HelperInfo[] {
    const now = performance.now();
    return [...this.running.values()].map(({ startedAt, ...h }) => ({ ...h, ageMs: Math.round(now - startedAt) }));
  }

  /**
   * baton stops: every helper's group is killed now, and none starts from now on; so are the runs of baton's own
   * script (a --config read, a self-upgrade's build check).
   */
  stopAll(): void {
    this.closed = true;
    stopScripts();
    for (const h of this.running.values()) {
      const message = `${h.kind} pid ${h.pid} (${h.command}): baton is stopping`;
      this.log.event('kill', h.generation ? { generation: h.generation, message } : { message });
      signalGroup(h.pid, 'SIGKILL');
    }
  }
}
