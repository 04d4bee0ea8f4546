#!/usr/bin/env node
import { onExit } from 'signal-exit';
import { BatonError } from './errors.js';
import { createLogger } from './log.js';
import { parseOptions } from './options.js';
import { steerCommand } from './steer-command.js';
import { Supervisor } from './supervisor.js';

function fail(err: unknown): void {
  const e = err instanceof BatonError ? err : undefined;
  process.stderr.write(`error: ${e ? e.message : String((err as Error)?.stack ?? err)}\n`);
  process.stderr.write(`hint: ${e ? e.hint : 'this is a bug in baton; please report it with the log above'}\n`);
  process.exitCode = e ? e.exitCode : 1;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === 'steer') {
    const said = steerCommand(args.slice(1));
    if (said) process.stdout.write(said + '\n');
    return;
  }
  const config = parseOptions(args);
  if (!config) return;
  const log = createLogger(config.logFormat);
  const supervisor = new Supervisor(config, log);
  // Last resort for an exit baton did not plan (a bug): stop the children and remove what baton made.
  const removeGuard = onExit(() => supervisor.abandon());
  process.on('SIGHUP', () => supervisor.reload());
  process.on('SIGTERM', () => supervisor.stop());
  process.on('SIGINT', () => supervisor.stop());
  try {
    await supervisor.start();
    process.exitCode = await supervisor.done;
  } finally {
    removeGuard();
    for (const s of ['SIGHUP', 'SIGTERM', 'SIGINT'] as const) process.removeAllListeners(s);
  }
}

main().catch(fail);
