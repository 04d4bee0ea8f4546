import type { ControlServer } from '../control/server.js';
import { execSelf } from '../exec-self.js';
import type { BatonLogger } from '../log.js';
import type { MetricsServer } from '../metrics/server.js';
import { nodeFlags, preload, preloadEnv } from '../preload.js';
import { type CheckedBuild, checkBuild } from '../self-check.js';
import type { ResumeState } from '../self-upgrade.js';
import type { Supervisor } from '../supervisor.js';
import { forwardSignals, holdObject } from '../sys/hold.js';
import { childOomScore, oomFile } from '../sys/oom.js';
import { clearAmbient, raiseAmbient } from '../sys/prctl.js';
import { parentPid } from '../sys/proc.js';
import { ignoreSignals } from '../sys/signal.js';
import { daemonFlags, parsedEnv } from './parsed.js';
import { type BatonSignal, SIGNALS, type Signals } from './signals.cjs';

/** What a self-upgrade works with. */
export interface SelfUpgradeParts {
  sup: Supervisor;
  log: BatonLogger;
  signals: Signals;
  /** The ambient capabilities baton started with (and withholds from its children): the next program gets them. */
  ambient: number[];
  /** The control server now. */
  control: () => ControlServer;
  /** The --metrics server, if any: its listening socket goes to the next program (a build that parses --metrics). */
  metrics: () => MetricsServer | undefined;
  /** For a program that cannot adopt the control socket: close it before the execve, open it again if that fails. */
  closeControl: () => void;
  reopenControl: () => void;
}

/**
 * SIGUSR2: check the new build, freeze, execve in place (same pid, so systemd's main pid and the
 * children stay); a failed check or exec goes on as before. One at a time: a SIGUSR2 meanwhile asks
 * for one more after it (the deploy may have changed again).
 */
export function selfUpgrader(p: SelfUpgradeParts): () => void {
  let underway = false;
  let again = false;
  const go = async (): Promise<void> => {
    if (underway) {
      again = true;
      return;
    }
    [underway, again] = [true, false];
    try {
      await selfUpgrade(p, () => again);
    } finally {
      underway = false;
    }
    if (again) await go();
  };
  return () => void go();
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

async function selfUpgrade(p: SelfUpgradeParts, again: () => boolean): Promise<void> {
  let build: CheckedBuild;
  const started = performance.now();
  try {
    build = await checkBuild();
  } catch (err) {
    return void p.log.event('self-upgrade-failed', { message: (err as Error).message });
  }
  p.log.event('self-check', { message: `${process.argv[1]} loads`, ms: Math.round(performance.now() - started) });
  // From here to the execve signals are held and passed on in BATON_RESUME; while an upgrade in
  // flight is awaited a stop still stops (and the self-upgrade is given up).
  p.signals.hold(['SIGTERM', 'SIGINT']);
  const control = build.features.includes('control') ? p.control() : undefined;
  const metrics = p.metrics();
  let state: ResumeState | undefined;
  let held: BatonSignal[] = [];
  try {
    // A canary window in flight goes on in the next program, if it takes one; else it is waited out here.
    await p.sup.idle(build.features.includes('canary'));
    // New requests wait in the backlog for the next program; those already accepted are answered here.
    await control?.pause();
    await metrics?.pause(); // scrapes wait in its backlog
    await turn(); // what libuv caught of signals reaches the queue
    state = await p.sup.freeze();
    p.signals.hold();
    if (state) {
      const native = holdNative(build.features.includes('hold'));
      // Signals wait for the next program from here; one turn brings what libuv caught before into the queue.
      if (native) await turn();
      held = p.signals.take();
      const flags = [...daemonFlags(nodeFlags()), ...(build.features.includes('preload') ? preload() : [])];
      // A build that does not take the fd would leave it open, for its children too.
      if (build.features.includes('oom-fd')) state.oomFd = oomFile();
      if (!build.features.includes('canary')) delete state.clients; // closed by the execve, as before
      if (metrics) state.metrics = { fd: metrics.fd };
      // What the new build read of baton's options: its daemon need not load an option parser (cli/parsed.ts).
      const env = build.argv ? parsedEnv(process.argv.slice(2), build.argv) : {};
      execInto(p, { state, control, flags, native, env }, [...(again() ? ['SIGUSR2' as const] : []), ...held]);
    }
  } catch (err) {
    p.log.event('self-upgrade-failed', { message: (err as Error).message });
    p.sup.thaw();
  }
  control?.resume().catch((err: Error) => p.log.event('warning', { message: `control socket: ${err.message}` }));
  metrics?.resume().catch((err: Error) => p.log.event('warning', { message: `metrics listener: ${err.message}` }));
  p.signals.release(held);
}

/** How long an execve waits for stderr's reader to take the lines still waiting (baton is frozen meanwhile). */
const EXEC_FLUSH_MS = 250;

/** What execInto() execs: the state, the control server to hand over (if any), node's flags. */
interface ExecTo {
  state: ResumeState;
  control: ControlServer | undefined;
  flags: string[];
  /** Added to the environment of the next program. */
  env: Record<string, string>;
  /** Signals forwarded for the native holder, and the environment that preloads it; else undefined. */
  native: Native | undefined;
}

interface Native {
  env: Record<string, string>;
  restore: () => void;
}

/**
 * Into a build with the native signal holder (sys/native/hold.c), every signal from now on waits,
 * pending, for the next program, which records it: undefined where this build or that one has none.
 */
function holdNative(hold: boolean): Native | undefined {
  const own = holdObject();
  const env = hold && own ? preloadEnv() : {};
  const restore = env.LD_PRELOAD && own ? forwardSignals(own) : undefined;
  return restore ? { env, restore } : undefined;
}

/**
 * The synchronous end: execve with `signals` (held for the next program) and the control socket's fd
 * (or, for a program that cannot adopt it, the socket closed). Returns only by throwing, all put back.
 */
function execInto(p: SelfUpgradeParts, to: ExecTo, signals: string[]): void {
  const { state, control, native } = to;
  let restore = native?.restore;
  let closed = false;
  try {
    const message = `execve ${process.execPath} ${process.argv[1]}`;
    p.log.event('self-upgrade', { message, generations: state.generations.length });
    if (control) state.control = { fd: control.fd, made: control.made };
    // A generation that exited and was reaped since the freeze (the turns above) is no child of
    // baton's any more: the next program would refuse the whole state for it.
    state.generations = state.generations.filter((g) => parentPid(g.pid) === process.pid);
    state.oomScoreAdj = childOomScore();
    state.signals = signals;
    // What stderr's reader has not taken by then dies with this program: the next one reports the count.
    state.logDropped = p.log.flush(EXEC_FLUSH_MS);
    // Handlers do not survive execve: a signal would kill the new program until it installs its own.
    // Without the native holder they are ignored: one that arrives from here to Node's start is lost.
    restore ??= ignoreSignals(SIGNALS);
    if (!control) {
      p.closeControl();
      closed = true;
    }
    raiseAmbient(p.ambient);
    execSelf(state, to.flags, { ...to.env, ...native?.env });
  } catch (err) {
    if (p.ambient.length > 0) clearAmbient();
    restore?.();
    if (closed) p.reopenControl();
    throw err;
  }
}
