import yargs from 'yargs';
import { defaults, type Config } from './config.js';
import { resolveCommand } from './command.js';
import { parseDuration, parseSignal } from './duration.js';
import { usageError } from './errors.js';
import type { HandoverName } from './handover/index.js';
import { handovers } from './handover/index.js';
import { parseListen } from './listener.js';
import type { LogFormat } from './log.js';
import { parseReady } from './ready/index.js';
import { parseRules } from './steering/rules.js';
import { lookupGroup, lookupUser } from './sys/user.js';

const HELP_HINT = 'run baton --help for the options';

export function parser(args: string[]) {
  return yargs(args)
    .scriptName('baton')
    .usage('$0 --listen ADDRESS [options] -- COMMAND [ARGS...]\n\nRuns COMMAND as generation 1, owns its listeners, and upgrades it with zero downtime on SIGHUP.')
    .parserConfiguration({ 'halt-at-non-option': true, 'populate--': true, 'camel-case-expansion': true })
    .option('listen', { type: 'string', array: true, describe: 'listener [NAME=]ADDRESS: HOST:PORT, [IPV6]:PORT, :PORT or unix:/path (repeatable)' })
    .option('backlog', { type: 'number', default: defaults.backlog, describe: 'listen(2) backlog of each listener' })
    .option('handover', { choices: Object.keys(handovers), default: defaults.handover, describe: 'how a generation gets the listeners (port: it binds $PORT itself; needs --steer)' })
    .option('ready', { type: 'string', describe: 'readiness: notify, grab, probe:<command> or delay:<duration> [default: grab for pidfd, delay:1s for inherit]' })
    .option('ready-timeout', { type: 'string', default: '60s', describe: 'a generation not ready by then is rolled back' })
    .option('drain', { type: 'string', default: '5s', describe: 'time both generations serve before the old one is stopped' })
    .option('stop-signal', { type: 'string', default: defaults.stopSignal, describe: 'signal that asks a generation to stop' })
    .option('kill-timeout', { type: 'string', default: '30s', describe: 'SIGKILL a generation this long after the stop signal' })
    .option('max-draining', { type: 'number', default: defaults.maxDraining, describe: 'old generations allowed to drain at once; the oldest beyond it is killed' })
    .option('pid-file', { type: 'string', describe: "write baton's pid here (removed on exit)" })
    .option('log-format', { choices: ['text', 'json'], default: defaults.logFormat, describe: 'log lines on stderr' })
    .option('user', { type: 'string', describe: 'run generations as this user (needs root; use --handover inherit)' })
    .option('group', { type: 'string', describe: "run generations with this group [default: the user's]" })
    .option('steer', { type: 'string', array: true, describe: 'SK_LOOKUP rule [tcp:]ADDRESS[/PREFIX]:PORTS, e.g. 127.0.0.1:7,77,8000-8099 (repeatable)' })
    .option('name', { type: 'string', describe: 'steering name: pins under bpffs/baton/NAME [default: from the first listener or rule]' })
    .option('state-dir', { type: 'string', describe: 'steering state, for a restart after a crash [default: /run/baton/NAME]' })
    .option('force', { type: 'boolean', default: false, describe: 'steer even where another process listens on a steered address and port' })
    .option('keep-steering', { type: 'boolean', default: false, describe: 'leave program, link and maps pinned when baton stops' })
    .strictOptions()
    .help()
    .version()
    .wrap(Math.min(120, process.stdout.columns || 100))
    .exitProcess(false)
    .fail((msg, err) => {
      throw err ?? usageError(msg.split('\n')[0]!, HELP_HINT);
    });
}

function wholeNumber(option: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) throw usageError(`--${option} must be a whole number >= ${min}, not ${value}`, HELP_HINT);
  return value;
}

/** argv → Config; undefined when --help or --version was answered. */
export function parseOptions(args: string[]): Config | undefined {
  const argv = parser(args).parseSync();
  if (argv.help || argv.version) return undefined; // yargs printed the answer
  const command = [...argv._.map(String), ...((argv['--'] as string[] | undefined) ?? [])];
  const listen = argv.listen ?? [];
  const steerSpecs = argv.steer ?? [];
  const handover = argv.handover as HandoverName;
  if (handover === 'port') {
    if (steerSpecs.length === 0) throw usageError('--handover port needs --steer', 'give the address and port clients connect to, e.g. --steer 0.0.0.0:8080');
    if (listen.length > 0) throw usageError('--handover port takes no --listen: each generation binds its own $PORT', 'drop --listen, or use --handover pidfd');
  } else if (listen.length === 0) {
    throw usageError('Missing required argument: listen', 'give at least one --listen ADDRESS, e.g. --listen 127.0.0.1:8080');
  }
  if (command.length === 0) throw usageError('no command to run', 'put the server command after --, e.g. baton --listen :8080 -- node server.js');
  if (command[0]!.startsWith('-')) throw usageError(`unknown option ${command[0]}`, HELP_HINT);
  resolveCommand(command[0]!);

  const ready = argv.ready === undefined ? handovers[handover].defaultReady : parseReady(argv.ready);
  if (ready.kind === 'grab' && !handovers[handover].watch) throw usageError(`--ready grab needs --handover pidfd or port, not ${handover}`, 'use --ready notify, probe:<command> or delay:<duration>');
  const user = argv.user === undefined ? undefined : lookupUser(argv.user);
  if (argv.group !== undefined && !user) throw usageError('--group needs --user', 'give --user too');
  if (user && argv.group !== undefined) user.gid = lookupGroup(argv.group);
  if (user && process.getuid?.() !== 0) throw usageError('--user needs baton to run as root', 'start baton as root, or drop --user');

  const specs = parseListen(listen);
  const steer = parseRules(steerSpecs);
  const name = argv.name ?? (listen[0] ?? steerSpecs[0] ?? 'baton').replace(/[^A-Za-z0-9_-]+/g, '_').replace(/^_+|_+$/g, '');
  // bpffs refuses names with dots
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) throw usageError(`bad --name "${name}"`, 'a name is 1-64 letters, digits, "_" or "-" (no dots: bpffs refuses them)');
  return {
    command,
    listen: specs,
    backlog: wholeNumber('backlog', argv.backlog, 1),
    handover,
    ready,
    readyTimeout: parseDuration('ready-timeout', argv.readyTimeout),
    drain: parseDuration('drain', argv.drain),
    stopSignal: parseSignal('stop-signal', argv.stopSignal),
    killTimeout: parseDuration('kill-timeout', argv.killTimeout),
    maxDraining: wholeNumber('max-draining', argv.maxDraining, 0),
    ...(argv.pidFile ? { pidFile: argv.pidFile } : {}),
    logFormat: argv.logFormat as LogFormat,
    ...(user ? { user } : {}),
    steer,
    name,
    stateDir: argv.stateDir ?? `/run/baton/${name}`,
    bpffs: process.env.BATON_BPFFS ?? '/sys/fs/bpf',
    force: argv.force,
    keepSteering: argv.keepSteering,
  };
}
