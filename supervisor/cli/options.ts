import { availableParallelism } from 'node:os';
import yargs from 'yargs';
import { bpffsRoot, defaults, NAME, stateDirFor, type Config } from '../config.js';
import { resolveCommand } from '../command.js';
import { parseDuration, parseSignal } from '../duration.js';
import { usageError } from '../errors.js';
import type { HandoverName } from '../handover/handover.js';
import { handovers } from '../handover/index.js';
import { parseListen } from '../listener.js';
import type { LogFormat } from '../log.js';
import { parseReady } from '../ready/index.js';
import { checkUnixPath } from '../address.js';
import { controlPath } from '../control/path.js';
import { strictParser } from './parser.js';
import { layered, type OptionShape } from './sources.js';
import { parseRules } from '../steering/rules.js';
import { lookupGroup, lookupUser } from '../sys/user.js';

const HELP_HINT = 'run baton --help for the options';
const CONTROL_HINT = 'give a shorter --control (or --pid-file) path';

type Option = OptionShape & { describe: string; default?: string | number | boolean; choices?: string[] };

/** Every option of the main command; also what BATON_* variables and --config keys may set. */
export const OPTIONS: Record<string, Option> = {
  listen: { type: 'string', array: true, describe: 'listener [NAME=]ADDRESS: HOST:PORT, [IPV6]:PORT, :PORT or unix:/path (repeatable)' },
  backlog: { type: 'number', default: defaults.backlog, describe: 'listen(2) backlog of each listener' },
  handover: { type: 'string', choices: Object.keys(handovers), default: defaults.handover, describe: 'how a generation gets the listeners (port: it binds $PORT itself; needs --steer)' },
  ready: { type: 'string', describe: 'readiness: notify, grab, probe:<command> or delay:<duration> [default: grab for pidfd and port, delay:1s for inherit]' },
  'ready-timeout': { type: 'string', default: '60s', describe: 'a generation not ready by then is rolled back' },
  drain: { type: 'string', default: '5s', describe: 'time both generations serve before the old one is stopped' },
  'stop-signal': { type: 'string', default: defaults.stopSignal, describe: 'signal that asks a generation to stop' },
  'kill-timeout': { type: 'string', default: '30s', describe: 'SIGKILL a generation this long after the stop signal' },
  'max-draining': { type: 'number', default: defaults.maxDraining, describe: 'old generations allowed to drain at once; the oldest beyond it is killed' },
  workers: { type: 'string', default: '1', describe: 'processes per generation, all on the same listeners; auto = one per CPU' },
  surge: { type: 'number', default: 1, describe: 'new workers started at once in a rolling upgrade' },
  check: { type: 'string', describe: 'preflight shell command run before each upgrade (e.g. a config test); non-zero aborts it' },
  'pid-file': { type: 'string', describe: "write baton's pid here (removed on exit)" },
  control: { type: 'string', describe: 'control socket [default: beside --pid-file, else $XDG_RUNTIME_DIR or /run/baton/NAME.sock]' },
  'log-format': { type: 'string', choices: ['text', 'json'], default: defaults.logFormat, describe: 'log lines on stderr' },
  user: { type: 'string', describe: 'run generations as this user (needs root; use --handover inherit)' },
  group: { type: 'string', describe: "run generations with this group [default: the user's]" },
  subreaper: { type: 'boolean', default: false, describe: 'reap orphaned descendants (PR_SET_CHILD_SUBREAPER); automatic as PID 1' },
  steer: { type: 'string', array: true, describe: 'SK_LOOKUP rule [tcp:]ADDRESS[/PREFIX]:PORTS, e.g. 127.0.0.1:7,77,8000-8099 (repeatable)' },
  name: { type: 'string', describe: 'name of this baton: steering pins under bpffs/baton/NAME, default control socket [default: from the first listener or rule]' },
  'state-dir': { type: 'string', describe: 'steering state, for a restart after a crash [default: /run/baton/NAME]' },
  force: { type: 'boolean', default: false, describe: 'steer even where another process listens on a steered address and port' },
  'keep-steering': { type: 'boolean', default: false, describe: 'leave program, link and maps pinned when baton stops' },
  config: { type: 'string', describe: 'JSON file of options (keys are option names); flags win over BATON_* variables, which win over it' },
};

export function parser(args: string[]) {
  let y = yargs(args)
    .scriptName('baton')
    .usage('$0 --listen ADDRESS [options] -- COMMAND [ARGS...]\n$0 reload|status|stop [--control PATH | --pid-file PATH]\n$0 steer clean --name NAME\n\nRuns COMMAND as generation 1, owns its listeners, and upgrades it with zero downtime on SIGHUP.\nEvery option can also be set by BATON_<OPTION> (e.g. BATON_DRAIN=10s) or in --config.')
    // The command is passed on as written: no number parsing of it.
    .parserConfiguration({ 'halt-at-non-option': true, 'populate--': true, 'camel-case-expansion': true, 'parse-positional-numbers': false, 'parse-numbers': false });
  for (const [name, { type, ...o }] of Object.entries(OPTIONS)) {
    // A number option is read as written (yargs would turn "abc" into NaN and 1e3 into 1000): untyped,
    // it stays a string ('parse-numbers': false), and parseOptions checks it.
    // An option given without its value is refused rather than left at its default.
    y = y.option(name, { ...o, ...(type === 'number' ? {} : { type }), requiresArg: type !== 'boolean' && !o.array });
  }
  return strictParser(y.help().version().wrap(Math.min(120, process.stdout.columns || 100)), HELP_HINT);
}

/** The parsed options, as yargs names them (camel case). */
interface Argv {
  _: Array<string | number>;
  '--'?: string[];
  help?: boolean;
  version?: boolean;
  listen?: string[];
  backlog: string | number;
  handover: string;
  ready?: string;
  readyTimeout: string;
  drain: string;
  stopSignal: string;
  killTimeout: string;
  maxDraining: string | number;
  workers: string;
  surge: string | number;
  check?: string;
  pidFile?: string;
  control?: string;
  logFormat: string;
  user?: string;
  group?: string;
  subreaper: boolean;
  steer?: string[];
  name?: string;
  stateDir?: string;
  force: boolean;
  keepSteering: boolean;
}

/** Digits only (no 1e3, 0x10 or 1.0), from `min` to `max`: a number option as given, or its default. */
function wholeNumber(option: string, value: string | number, min: number, max?: number, or = ''): number {
  const text = String(value).trim();
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(n >= min && n <= (max ?? Number.MAX_SAFE_INTEGER))) {
    const range = max === undefined ? `>= ${min}` : `from ${min} to ${max}`;
    const given = JSON.stringify(String(value));
    throw usageError(`--${option} must be a whole number ${range}${or}, not ${given}`, HELP_HINT);
  }
  return n;
}

/** argv → Config; undefined when --help or --version was answered. */
export function parseOptions(args: string[]): Config | undefined {
  const argv = parser(layered(args, OPTIONS)).parseSync() as unknown as Argv;
  if (argv.help || argv.version) return undefined; // yargs printed the answer
  const command = [...argv._, ...(argv['--'] ?? [])].map(String);
  const listen = argv.listen ?? [];
  const steerSpecs = argv.steer ?? [];
  const handover = argv.handover as HandoverName;
  const strategy = handovers[handover];
  if (!strategy.sharesListener) {
    const steerHint = 'give the address and port clients connect to, e.g. --steer 0.0.0.0:8080';
    if (steerSpecs.length === 0) throw usageError(`--handover ${handover} needs --steer`, steerHint);
    const message = `--handover ${handover} takes no --listen: each generation binds its own $PORT`;
    if (listen.length > 0) throw usageError(message, 'drop --listen, or use --handover pidfd');
  } else if (listen.length === 0) {
    throw usageError('Missing required argument: listen', 'give at least one --listen ADDRESS, e.g. --listen 127.0.0.1:8080');
  }
  if (command.length === 0) throw usageError('no command to run', 'put the server command after --, e.g. baton --listen :8080 -- node server.js');
  if (command[0]!.startsWith('-')) throw usageError(`unknown option ${command[0]}`, HELP_HINT);
  resolveCommand(command[0]!);

  const ready = argv.ready === undefined ? strategy.defaultReady : parseReady(argv.ready);
  if (ready.kind === 'grab' && !strategy.grabs) {
    const hint = 'use --ready notify, probe:<command> or delay:<duration>';
    throw usageError(`--ready grab needs --handover pidfd or port, not ${handover}`, hint);
  }
  const user = argv.user === undefined ? undefined : lookupUser(argv.user);
  if (argv.group !== undefined && !user) throw usageError('--group needs --user', 'give --user too');
  if (user && argv.group !== undefined) user.gid = lookupGroup(argv.group);
  if (user && process.getuid?.() !== 0) throw usageError('--user needs baton to run as root', 'start baton as root, or drop --user');

  const workers =
    argv.workers === 'auto' ? availableParallelism() : wholeNumber('workers', argv.workers, 1, undefined, ' or auto');
  if (workers > 1 && !strategy.sharesListener) {
    const hint = 'use --handover pidfd or inherit (with --steer if you need it)';
    throw usageError(`--workers needs a shared listener, which --handover ${handover} does not have`, hint);
  }
  const specs = parseListen(listen);
  const control = controlPath({ ...argv, name: argv.name ?? 'baton' })!;
  if (specs.some((s) => s.address.kind === 'unix' && s.address.path === control)) {
    throw usageError(`the control socket ${control} is also a --listen`, 'give --control another path (by default it sits beside --pid-file)');
  }
  const steer = parseRules(steerSpecs);
  const name = argv.name ?? (listen[0] ?? steerSpecs[0] ?? 'baton').replace(/[^A-Za-z0-9_-]+/g, '_').replace(/^_+|_+$/g, '');
  // bpffs refuses names with dots
  if (!NAME.test(name)) throw usageError(`bad --name "${name}"`, 'a name is 1-64 letters, digits, "_" or "-" (no dots: bpffs refuses them)');
  return {
    command,
    listen: specs,
    // listen(2) takes an int (the kernel caps it at net.core.somaxconn); a larger value would wrap.
    backlog: wholeNumber('backlog', argv.backlog, 1, 2 ** 31 - 1),
    handover,
    ready,
    readyTimeout: parseDuration('ready-timeout', argv.readyTimeout),
    drain: parseDuration('drain', argv.drain),
    stopSignal: parseSignal('stop-signal', argv.stopSignal),
    killTimeout: parseDuration('kill-timeout', argv.killTimeout),
    maxDraining: wholeNumber('max-draining', argv.maxDraining, 0),
    workers,
    surge: wholeNumber('surge', argv.surge, 1),
    ...(argv.pidFile ? { pidFile: argv.pidFile } : {}),
    ...(argv.check ? { check: argv.check } : {}),
    control: checkUnixPath(argv.control || argv.pidFile ? control : controlPath({ name })!, 'control socket', CONTROL_HINT),
    subreaper: argv.subreaper,
    logFormat: argv.logFormat as LogFormat,
    ...(user ? { user } : {}),
    steer,
    name,
    stateDir: argv.stateDir ?? stateDirFor(name),
    bpffs: bpffsRoot(),
    force: argv.force,
    keepSteering: argv.keepSteering,
  };
}
