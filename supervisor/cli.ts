#!/usr/bin/env -S node --max-semi-space-size=1
// A 1 MB young generation keeps V8 from growing baton's small, long-lived heap (and its RSS) over
// many upgrades: measured 7 MB instead of 17 MB of growth over 600 upgrades.
import { onExit } from 'signal-exit';
import { controlCommand } from './control-command.js';
import { controlHandler } from './control/handler.js';
import { ControlServer } from './control/server.js';
import { BatonError } from './errors.js';
import { createLogger } from './log.js';
import { parseOptions } from './options.js';
import { startReaper } from './reaper.js';
import { steerCommand } from './steer-command.js';
import { execSelf, takeResumeState } from './self-upgrade.js';
import { Supervisor } from './supervisor.js';
import { systemdHooks } from './systemd.js';

function fail(err: unknown): void {
  const e = err instanceof BatonError ? err : undefined;
  process.stderr.write(`error: ${e ? e.message : String((err as Error)?.stack ?? err)}\n`);
  process.stderr.write(`hint: ${e ? e.hint : 'this is a bug in baton; please report it with the log above'}\n`);
  process.exitCode = e ? e.exitCode : 1;
}

async function run(args: string[]): Promise<void> {
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
    log.event('self-upgrade', { message: `execve ${process.execPath} ${process.argv[1]}`, generations: state.generations.length });
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
    for (const s of ['SIGHUP', 'SIGTERM', 'SIGINT', 'SIGUSR2', 'SIGTTIN', 'SIGTTOU'] as const) process.removeAllListeners(s);
  }
}

async function main(): Promise<void> {
  const [first, ...rest] = process.argv.slice(2);
  if (first === 'steer') return void print(steerCommand(rest));
  if (first === 'reload' || first === 'status' || first === 'stop') return void print(await controlCommand(first, rest));
  await run(process.argv.slice(2));
}

function print(text: string): void {
  if (text) process.stdout.write(text + '\n');
}

main().catch(fail);
