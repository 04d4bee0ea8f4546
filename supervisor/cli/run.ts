import { onExit } from 'signal-exit';
import { controlHandler } from '../control/handler.js';
import { ControlServer } from '../control/server.js';
import { createLogger } from '../log.js';
import { startReaper } from '../reaper.js';
import { execSelf, takeResumeState } from '../self-upgrade.js';
import { Supervisor } from '../supervisor.js';
import { systemdHooks } from '../systemd.js';
import { fail } from './fail.js';
import { parseOptions } from './options.js';

/** The main command: resume state, systemd's NOTIFY_SOCKET, the control server, signals, the reaper. */
export async function run(args: string[]): Promise<void> {
  const resume = takeResumeState();
  const config = parseOptions(args);
  if (!config) return;
  const log = createLogger(config.logFormat);
  // baton's own NOTIFY_SOCKET (systemd's) is never passed on: generations get private ones. It is
  // kept in BATON_NOTIFY_SOCKET so that a self-upgraded baton still has it.
  const notifySocket = process.env.NOTIFY_SOCKET ?? (resume ? process.env.BATON_NOTIFY_SOCKET : undefined);
  delete process.env.NOTIFY_SOCKET;
  if (notifySocket) process.env.BATON_NOTIFY_SOCKET = notifySocket;
  const sup = new Supervisor(config, log, systemdHooks(notifySocket, log), resume);
  const handler = controlHandler(sup);
  let control: ControlServer;
  try {
    control = await ControlServer.open(config.control, handler, log);
  } catch (err) {
    sup.discard();
    throw err;
  }
  // Last resort for an exit baton did not plan (a bug): stop the children and remove what baton made.
  const removeGuard = onExit(() => {
    sup.abandon();
    control.close();
  });
  const stopReaper = process.pid === 1 || config.subreaper ? startReaper(log, config.subreaper) : () => {};
  process.on('SIGHUP', () => void sup.reload());
  process.on('SIGTERM', () => sup.stop());
  process.on('SIGINT', () => sup.stop());
  process.on('SIGTTIN', () => sup.scale(1));
  process.on('SIGTTOU', () => sup.scale(-1));
  process.on('SIGUSR2', () => void selfUpgrade());
  // In place (execve): same pid, so systemd's main pid and the children stay; a failed exec goes on.
  const selfUpgrade = async () => {
    const state = await sup.freeze();
    if (!state) return;
    log.event('self-upgrade', {
      message: `execve ${process.execPath} ${process.argv[1]}`,
      generations: state.generations.length,
    });
    try {
      control.close();
      execSelf(state);
    } catch (err) {
      log.event('self-upgrade-failed', { message: (err as Error).message });
      void ControlServer.open(config.control, handler, log).then((c) => (control = c), fail);
      sup.thaw(state);
    }
  };
  try {
    await sup.start();
    process.exitCode = await sup.done;
  } finally {
    control.close();
    stopReaper();
    removeGuard();
    for (const s of ['SIGHUP', 'SIGTERM', 'SIGINT', 'SIGUSR2', 'SIGTTIN', 'SIGTTOU'] as const)
      process.removeAllListeners(s);
  }
}
