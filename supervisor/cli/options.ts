import { availableParallelism } from 'node:os';
import { checkUnixPath } from '../address.js';
import { resolveCommand } from '../command.js';
import { bpffsRoot, type Config, MAX_WORKERS, NAME, stateDirFor } from '../config.js';
import { controlPath } from '../control/path.js';
import { parseDuration, parseSignal, wholeNumber } from '../duration.js';
import { usageError } from '../errors.js';
import type { HandoverName } from '../handover/handover.js';
import { handovers } from '../handover/index.js';
import { keeperPath } from '../handover/keeper.js';
import { parseHealth } from '../health.js';
import type { LogFormat } from '../log.js';
import { parseReady } from '../ready/index.js';
import { logicalCwd, workingPath } from '../release.js';
import { runAs } from '../run-as.js';
import { parseRules } from '../steering/rules.js';
import { holdsCapabilities } from '../sys/capability.js';
import { yamaScope } from '../sys/proc.js';
import { lookupGroup, lookupUser } from '../sys/user.js';
import { checkListen, checkMetrics } from './listen-check.js';

export const HELP_HINT = 'run baton --help for the options';
const CONTROL_HINT = 'give a shorter --control (or --pid-file) path';

/** The parsed options, as yargs names them (camel case): JSON, so that one process may read them for another. */
export interface Argv {
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
  checkTimeout: string;
  health?: string;
  healthInterval: string;
  healthFailures: string | number;
  cwd?: string;
  envFile?: string[];
  pidFile?: string;
  control?: string;
  metrics?: string;
  logFormat: string;
  user?: string;
  group?: string;
  subreaper: boolean;
  steer?: string[];
  name?: string;
  stateDir?: string;
  force: boolean;
  keepSteering: boolean;
  sharedSocket: boolean;
}

const DRAINING_HINT = 'at least one old generation must drain; use --drain 0 to stop old generations at once';
const SURGE_HINT =
  `give at most ${MAX_WORKERS}: ` + 'a --surge at or above --workers already starts every new worker at once';
const WORKERS_HINT =
  `${MAX_WORKERS} processes per generation is the most (nginx's limit too); ` + 'give fewer, see docs/cli.md#bounds';

/**
 * The options as yargs read them → Config, every value checked. `here`: baton's working directory as the user
 * named it (logicalCwd at its start), which --cwd starts from.
 */
export function toConfig(argv: Argv, here = logicalCwd()): Config {
  const command = [...argv._, ...(argv['--'] ?? [])].map(String);
  const listen = argv.listen ?? [];
  const steerSpecs = argv.steer ?? [];
  const handover = argv.handover as HandoverName;
  const strategy = handovers[handover];
  const steer = parseRules(steerSpecs);
  const specs = checkListen(strategy, listen, { rules: steer, shared: argv.sharedSocket });
  if (command.length === 0)
    throw usageError(
      'no command to run',
      'put the server command after --, e.g. baton --listen :8080 -- node server.js',
    );
  if (command[0]!.startsWith('-')) throw usageError(`unknown option ${command[0]}`, HELP_HINT);
  resolveCommand(command[0]!);

  const ready = argv.ready === undefined ? strategy.defaultReady : parseReady(argv.ready);
  if (ready.kind === 'grab' && !strategy.grabs) {
    const hint = 'use --ready notify, probe:<command> or delay:<duration>';
    throw usageError(`--ready grab needs --handover pidfd or port, not ${handover}`, hint);
  }
  // Generations never get baton's capabilities (the ambient set is cleared), and the kernel lets a
  // process take fds only from one whose capabilities it has all of: the keeper drops all of its own.
  if (strategy.pulls && !keeperPath() && process.geteuid?.() !== 0 && holdsCapabilities()) {
    throw usageError(
      '--handover pidfd cannot work while baton holds capabilities: generations do not get them, ' +
        'so the kernel refuses them pidfd_getfd on baton',
      'use --handover inherit (--steer works with it), or start baton without capabilities',
    );
  }
  const scope = yamaScope() ?? 0;
  if (strategy.pulls && scope >= 2 && process.geteuid?.() !== 0) {
    throw usageError(
      `--handover pidfd cannot work under Yama ptrace_scope ${scope} without root: only CAP_SYS_PTRACE may attach`,
      'use --handover inherit',
    );
  }
  const named = argv.user === undefined ? undefined : lookupUser(argv.user);
  if (argv.group !== undefined && !named) throw usageError('--group needs --user', 'give --user too');
  if (named && argv.group !== undefined) named.gid = lookupGroup(argv.group);
  if (named && process.getuid?.() !== 0)
    throw usageError('--user needs baton to run as root', 'start baton as root, or drop --user');
  const user = named && runAs(named);

  const workers =
    argv.workers === 'auto'
      ? Math.min(availableParallelism(), MAX_WORKERS)
      : wholeNumber('workers', argv.workers, 1, MAX_WORKERS, ' or auto', WORKERS_HINT);
  if (workers > 1 && !strategy.sharesListener) {
    const hint = 'use --handover pidfd or inherit (with --steer if you need it)';
    throw usageError(`--workers needs a shared listener, which --handover ${handover} does not have`, hint);
  }
  const control = controlPath({ ...argv, name: argv.name ?? 'baton' })!;
  if (specs.some((s) => s.address.kind === 'unix' && s.address.path === control)) {
    throw usageError(
      `the control socket ${control} is also a --listen`,
      'give --control another path (by default it sits beside --pid-file)',
    );
  }
  const metrics = argv.metrics === undefined ? undefined : checkMetrics(argv.metrics, specs, control, steer);
  const name =
    argv.name ?? (listen[0] ?? steerSpecs[0] ?? 'baton').replace(/[^A-Za-z0-9_-]+/g, '_').replace(/^_+|_+$/g, '');
  // bpffs refuses names with dots
  if (!NAME.test(name))
    throw usageError(
      `bad --name "${name}"`,
      'a name is 1-64 letters, digits, "_" or "-" (no dots: bpffs refuses them)',
    );
  return {
    command,
    cwd: workingPath(argv.cwd, here),
    envFiles: argv.envFile ?? [],
    listen: specs,
    // listen(2) takes an int (the kernel caps it at net.core.somaxconn); a larger value would wrap.
    backlog: wholeNumber('backlog', argv.backlog, 1, 2 ** 31 - 1),
    handover,
    ready,
    readyTimeout: parseDuration('ready-timeout', argv.readyTimeout),
    drain: parseDuration('drain', argv.drain),
    stopSignal: parseSignal('stop-signal', argv.stopSignal),
    killTimeout: parseDuration('kill-timeout', argv.killTimeout),
    // 0 would kill every old generation the moment an upgrade succeeds: no drain at all.
    maxDraining: wholeNumber('max-draining', argv.maxDraining, 1, undefined, '', DRAINING_HINT),
    workers,
    surge: wholeNumber('surge', argv.surge, 1, MAX_WORKERS, '', SURGE_HINT),
    ...(argv.pidFile ? { pidFile: argv.pidFile } : {}),
    ...(argv.check ? { check: argv.check } : {}),
    checkTimeout: parseDuration('check-timeout', argv.checkTimeout),
    ...(argv.health === undefined
      ? {}
      : { health: parseHealth(argv.health, argv.healthInterval, argv.healthFailures) }),
    control: checkUnixPath(
      argv.control || argv.pidFile ? control : controlPath({ name })!,
      'control socket',
      CONTROL_HINT,
    ),
    ...(metrics ? { metrics } : {}),
    subreaper: argv.subreaper,
    logFormat: argv.logFormat as LogFormat,
    ...(user ? { user } : {}),
    steer,
    name,
    stateDir: argv.stateDir ?? stateDirFor(name),
    bpffs: bpffsRoot(),
    force: argv.force,
    keepSteering: argv.keepSteering,
    sharedSocket: argv.sharedSocket,
  };
}
