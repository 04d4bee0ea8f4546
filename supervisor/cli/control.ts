import yargs from 'yargs';
import { request } from '../control/client.js';
import { controlPath, onlyControlSocket } from '../control/path.js';
import { MAX_DURATION, parseDuration } from '../duration.js';
import { BatonError, usageError } from '../errors.js';
import { formatStatus, type Status } from '../status.js';
import type { UpgradeResult } from '../upgrade.js';
import { strictParser } from './parser.js';
import { layered } from './sources.js';
import { stepPrinter } from './steps.js';
import { watchStatus } from './watch.js';

const WHERE = {
  control: { type: 'string', describe: "the baton's control socket" },
  'pid-file': { type: 'string', describe: "the baton's --pid-file (its control socket is beside it)" },
  name: { type: 'string', describe: "the baton's --name" },
} as const;

/** status, stop and a reload without --wait are answered at once: past this, baton is stalled (or stopped). */
const ANSWER_MS = 10_000;

/**
 * `baton reload|status|stop`: one request to a running baton; returns what to print last. `out`: where
 * `reload --wait --progress` and `status --watch` print as they go.
 */
export async function controlCommand(
  command: 'reload' | 'status' | 'stop',
  args: string[],
  out: NodeJS.WriteStream = process.stdout,
): Promise<string> {
  const parser = yargs(layered(args, WHERE))
    .scriptName(`baton ${command}`)
    .options(WHERE)
    .option('wait', {
      type: 'boolean',
      default: false,
      describe: 'reload: return when the new generation is active past its canary window (0) or rolled back (1)',
    })
    .option('timeout', {
      type: 'string',
      default: '120s',
      requiresArg: true,
      describe: 'reload --wait: give up after this long',
    })
    .option('progress', {
      type: 'boolean',
      default: false,
      describe: 'reload --wait: print each step of the upgrade as it happens, until the old processes are gone',
    })
    .option('watch', { type: 'boolean', default: false, describe: 'status: show it again every second until ^C' })
    .option('json', { type: 'boolean', default: false, describe: 'status: print JSON' });
  const argv = strictParser(parser, `run baton ${command} --help`).parseSync();
  if (argv.help) return '';
  if (argv._.length) throw usageError(`unexpected argument ${argv._[0]}`, `run baton ${command} --help`);
  const path = controlPath(argv) ?? onlyControlSocket();
  // The client waits 5 s longer than baton does, and its timer has the same limit.
  const timeout = parseDuration('timeout', argv.timeout, MAX_DURATION - 5_000);
  if (timeout <= 0) throw usageError('--timeout must be more than 0', 'e.g. --timeout 30s');
  if (argv.progress && !(command === 'reload' && argv.wait)) {
    throw usageError('--progress needs reload --wait', 'run baton reload --wait --progress');
  }
  if (argv.watch && command !== 'status') throw usageError('--watch is for status', 'run baton status --watch');
  if (argv.watch) {
    await watchStatus(path, argv.json, out, ANSWER_MS);
    return '';
  }
  const waits = command === 'reload' && argv.wait;
  const progress = argv.progress ? { progress: true } : {};
  const req = { command, ...(command === 'reload' ? { wait: argv.wait, timeout, ...progress } : {}) };
  const steps = argv.progress ? stepPrinter(out) : undefined;
  const reply = await request(path, req, waits ? timeout + 5_000 : ANSWER_MS, steps?.print).finally(() => steps?.end());
  if (!reply.ok) throw new BatonError(reply.error.code, reply.error.message, reply.error.hint ?? '');
  if (command === 'status')
    return argv.json ? JSON.stringify(reply.status, null, 2) : formatStatus(reply.status as Status);
  if (command === 'stop') return 'baton is stopping';
  if (!argv.wait) return 'reload requested';
  const r = reply.result as UpgradeResult;
  const changes = (r.changes ?? []).map((c) => `\nchanged: ${c}`).join('');
  return `generation ${r.generation} is active (upgrade took ${r.ms}ms)${changes}`;
}
