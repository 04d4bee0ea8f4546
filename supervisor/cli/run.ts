import { onExit } from 'signal-exit';
import { formatAddress } from '../address.js';
import { controlHandler, upgradeReply } from '../control/handler.js';
import { replyOn } from '../control/serve.js';
import { ControlServer, type Handler } from '../control/server.js';
import { usageError } from '../errors.js';
import { allHooks } from '../hooks.js';
import { batonVersion, INSTALL_HINT, replaceableCode } from '../install.js';
import { type BatonLogger, createLogger, type Logger, Tap } from '../log.js';
import { memoryTrimmer } from '../memory.js';
import { meter, serveMetrics } from '../metrics/index.js';
import type { MetricsServer } from '../metrics/server.js';
import { formatReady } from '../ready/index.js';
import { startReaper } from '../reaper.js';
import { logicalCwd, resolveRelease } from '../release.js';
import { takeResumeState } from '../resume.js';
import type { ResumeState } from '../self-upgrade.js';
import { Supervisor } from '../supervisor.js';
import { ambientCapabilities } from '../sys/capability.js';
import { closeFd, closeOnExecAll } from '../sys/fd.js';
import { heldAtStart } from '../sys/hold.js';
import { protectFromOom } from '../sys/oom.js';
import { clearAmbient } from '../sys/prctl.js';
import { keepSpawnsOnThisThread } from '../sys/spawn.js';
import { systemdHooks } from '../systemd.js';
import type { UpgradeResult } from '../upgrade.js';
import { fail } from './fail.js';
import { type Argv, toConfig } from './options.js';
import { rereadOptions } from './parsed.js';
import { selfUpgrader } from './reexec.js';
import { type BatonSignal, Signals } from './signals.cjs';
import { configPath } from './sources.js';

/**
 * The main command: resume state, systemd's NOTIFY_SOCKET, the control server, signals, the reaper.
 * `held`: the signals cli.ts has held since a self-upgrade's execve; they are handled once the supervisor runs.
 * `parsed`: what the program before this one read from `args` (cli/parsed.ts); without, yargs reads them here.
 */
export async function run(args: string[], held?: Signals, parsed?: Argv): Promise<void> {
  // What baton's launcher gave it reaches no process baton starts: no fd baton did not open, no capability.
  closeOnExecAll();
  const ambient = ambientCapabilities();
  if (ambient.length > 0) {
    clearAmbient();
    keepSpawnsOnThisThread();
  }
  const resume = takeResumeState();
  const here = logicalCwd();
  const argv = parsed ?? (await import('./argv.js')).readArgv(args, here);
  if (!argv) return;
  const config = toConfig(argv, here);
  // At start a release that cannot be used is a usage error; at an upgrade it refuses the upgrade (planUpgrade).
  const release = resolveRelease(config);
  if ('reason' in release) throw usageError(release.reason, release.hint);
  // With a --config file, each upgrade reads the options again (the flags and BATON_* as they were given).
  const reread = configPath(args) ? () => rereadOptions(args, here) : undefined;
  const log = new Tap(createLogger(config.logFormat, 2, resume?.logDropped));
  flushAtExit(log);
  const replaceable = replaceableCode();
  if (replaceable) log.event('warning', { message: `${replaceable}: ${INSTALL_HINT}` });
  // Before the first child: it must not inherit baton's lowered value.
  protectFromOom(resume?.oomScoreAdj, resume?.oomFd);
  // baton's own NOTIFY_SOCKET (systemd's) is never passed on: generations get private ones. It is
  // kept in BATON_NOTIFY_SOCKET so that a self-upgraded baton still has it.
  const notifySocket = process.env.NOTIFY_SOCKET ?? (resume ? process.env.BATON_NOTIFY_SOCKET : undefined);
  delete process.env.NOTIFY_SOCKET;
  if (notifySocket) process.env.BATON_NOTIFY_SOCKET = notifySocket;
  const answer = (fd: number, r: UpgradeResult) => replyOn(fd, upgradeReply(r));
  const read = () => sup.readings();
  const source = { version: batonVersion(), handover: config.handover, steering: config.steer.length > 0, read };
  const metered = config.metrics && (await meter(source, log));
  const trimmer = memoryTrimmer();
  const moments = { started: trimmer.activity, reloading: trimmer.activity, upgraded: trimmer.activity };
  const hooks = allHooks(systemdHooks(notifySocket, log), { answer }, metered ? metered.hooks : {}, moments);
  const sup = new Supervisor(config, log, hooks, resume, reread);
  const fields = { handover: config.handover, ready: formatReady(config.ready), drain: config.drain };
  log.event('config', { ...fields, stop_signal: config.stopSignal, ...(resume ? { resumed: true } : {}) });
  let metrics: MetricsServer | undefined;
  const where = () => (metrics ? formatAddress(metrics.address) : undefined);
  const handler = controlHandler({ supervisor: sup, log, metrics: where });
  let control: ControlServer;
  try {
    control = await openControl(config.control, handler, log, resume);
  } catch (err) {
    sup.discard();
    throw err;
  }
  try {
    const handed = resume?.metrics?.fd;
    if (config.metrics && metered) {
      metrics = await serveMetrics(config.metrics, metered.metrics, log, { rules: config.steer, handed });
    } else if (handed !== undefined) closeFd(handed); // --config no longer asks for metrics
  } catch (err) {
    // After a self-upgrade (a --config that moved --metrics to an address in use) the generations run: baton goes
    // on with them, without metrics, rather than give up and leave them.
    if (!resume) {
      control.close();
      sup.discard();
      throw err;
    }
    log.event('warning', { message: `${(err as Error).message}; baton goes on without --metrics` });
  }
  // Last resort for an exit baton did not plan (a bug): stop the children and remove what baton made.
  const removeGuard = onExit(() => {
    sup.abandon();
    control.close();
    metrics?.close();
  });
  const stopReaper = process.pid === 1 || config.subreaper ? startReaper(log, config.subreaper) : () => {};
  const signals = held ?? new Signals();
  const selfUpgrade = selfUpgrader({
    sup,
    log,
    signals,
    ambient,
    control: () => control,
    metrics: () => metrics,
    closeControl: () => control.close(),
    reopenControl: () => void ControlServer.open(config.control, handler, log).then((c) => (control = c), fail),
  });
  const act = (sig: BatonSignal) => {
    if (sig === 'SIGHUP') void sup.reload();
    else if (sig === 'SIGTERM' || sig === 'SIGINT') sup.stop();
    else if (sig === 'SIGTTIN' || sig === 'SIGTTOU') sup.scale(sig === 'SIGTTIN' ? 1 : -1);
    else selfUpgrade();
  };
  try {
    if (!held) signals.handle(act);
    await sup.start();
    // First what the program before held, then what came before this one had handlers (hold.c), then the rest.
    if (held) signals.handle(act, [...(resume?.signals ?? []), ...heldAtStart()]);
    process.exitCode = await sup.done;
  } finally {
    trimmer.close();
    control.close();
    metrics?.close();
    stopReaper();
    removeGuard();
    signals.close();
  }
}

/** At exit, how long lines still waiting for stderr's reader may hold baton up (a stalled reader never takes them). */
const EXIT_FLUSH_MS = 1000;

/** After every other exit handler (which may log): what waits is written, or given up after EXIT_FLUSH_MS. */
function flushAtExit(log: BatonLogger): void {
  onExit(() => void log.flush(EXIT_FLUSH_MS), { alwaysLast: true });
}

/** The control socket: the one the program before a self-upgrade handed over, else a new one. */
function openControl(path: string, handler: Handler, log: Logger, resume?: ResumeState): Promise<ControlServer> {
  const handed = resume?.control;
  return handed
    ? ControlServer.resume(path, handed.fd, handed.made, handler, log)
    : ControlServer.open(path, handler, log);
}
