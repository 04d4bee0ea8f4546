import { defaults } from '../config.js';
import { handovers } from '../handover/index.js';
import type { OptionShape } from './sources.js';

export type Option = OptionShape & { describe: string; default?: string | number | boolean; choices?: string[] };

/** Every option of the main command; also what BATON_* variables and --config keys may set. */
export const OPTIONS: Record<string, Option> = {
  listen: {
    type: 'string',
    array: true,
    describe: 'listener [NAME=]ADDRESS: HOST:PORT, [IPV6]:PORT, :PORT or unix:/path (repeatable)',
  },
  backlog: { type: 'number', default: defaults.backlog, describe: 'listen(2) backlog of each listener' },
  handover: {
    type: 'string',
    choices: Object.keys(handovers),
    default: defaults.handover,
    describe: 'how a generation gets the listeners (port: it binds $PORT itself; needs --steer)',
  },
  ready: {
    type: 'string',
    describe:
      'readiness: notify, grab, probe:<command> or delay:<duration> ' +
      '[default: grab for pidfd and port, delay:1s for inherit]',
  },
  'ready-timeout': { type: 'string', default: '60s', describe: 'a generation not ready by then is rolled back' },
  drain: { type: 'string', default: '5s', describe: 'time both generations serve before the old one is stopped' },
  'stop-signal': { type: 'string', default: defaults.stopSignal, describe: 'signal that asks a generation to stop' },
  'kill-timeout': { type: 'string', default: '30s', describe: 'SIGKILL a generation this long after the stop signal' },
  'max-draining': {
    type: 'number',
    default: defaults.maxDraining,
    describe: 'old generations allowed to drain at once; the oldest beyond it is killed',
  },
  workers: {
    type: 'string',
    default: '1',
    describe: 'processes per generation, all on the same listeners; auto = one per CPU',
  },
  surge: { type: 'number', default: 1, describe: 'new workers started at once in a rolling upgrade' },
  cwd: {
    type: 'string',
    describe: 'where generations, --check and probes run, resolved again at each upgrade [default: $PWD, links kept]',
  },
  'env-file': {
    type: 'string',
    array: true,
    describe: "KEY=VALUE file read at each upgrade for the new generation (systemd's syntax; -PATH: may be missing)",
  },
  check: {
    type: 'string',
    describe: 'preflight shell command run before each upgrade (e.g. a config test); non-zero aborts it',
  },
  'check-timeout': {
    type: 'string',
    default: '60s',
    describe: 'a --check still running by then is killed (its process group) and the upgrade fails',
  },
  health: {
    type: 'string',
    describe:
      'probe:<command> run for each active process every --health-interval; a failure in the --drain window rolls back',
  },
  'health-interval': {
    type: 'string',
    default: '1s',
    describe: 'how often --health runs; each run may take this long',
  },
  'health-failures': {
    type: 'number',
    default: 3,
    describe: '--health failures in a row, after the --drain window, that count as a crash',
  },
  'pid-file': { type: 'string', describe: "write baton's pid here (removed on exit)" },
  control: {
    type: 'string',
    describe: 'control socket [default: beside --pid-file, else $XDG_RUNTIME_DIR or /run/baton/NAME.sock]',
  },
  metrics: {
    type: 'string',
    describe: "serve Prometheus metrics at GET /metrics on HOST:PORT or unix:/path (baton's own socket) [default: off]",
  },
  'log-format': {
    type: 'string',
    choices: ['text', 'json'],
    default: defaults.logFormat,
    describe: 'log lines on stderr',
  },
  user: { type: 'string', describe: 'run generations (and the keeper) as this user (needs root)' },
  group: { type: 'string', describe: "run generations with this group [default: the user's]" },
  subreaper: {
    type: 'boolean',
    default: false,
    describe: 'reap orphaned descendants (PR_SET_CHILD_SUBREAPER); automatic as PID 1',
  },
  steer: {
    type: 'string',
    array: true,
    describe: 'SK_LOOKUP rule [tcp:]ADDRESS[/PREFIX]:PORTS, e.g. 127.0.0.1:7,77,8000-8099 (repeatable)',
  },
  name: {
    type: 'string',
    describe:
      'name of this baton: steering pins under bpffs/baton/NAME, default control socket ' +
      '[default: from the first listener or rule]',
  },
  'state-dir': { type: 'string', describe: 'steering state, for a restart after a crash [default: /run/baton/NAME]' },
  force: {
    type: 'boolean',
    default: false,
    describe: 'steer even where another process listens on a steered address and port',
  },
  'shared-socket': {
    type: 'boolean',
    default: false,
    describe: 'with --steer: every generation serves from one socket baton holds, not a socket of its own',
  },
  'keep-steering': {
    type: 'boolean',
    default: false,
    describe: 'leave program, link and maps pinned when baton stops',
  },
  config: {
    type: 'string',
    describe: 'JSON file of options (keys are option names); flags win over BATON_* variables, which win over it',
  },
};
