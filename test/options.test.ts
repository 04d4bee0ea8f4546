// Option layering (defaults < --config file < BATON_* < flags) and the checks of parseOptions, without starting
// anything. parseOptions reads process.env: each call runs with the BATON_* variables a test gives and no others.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { parseOptions } from '../supervisor/cli/argv.js';
import { OPTIONS } from '../supervisor/cli/option-table.js';
import { layered } from '../supervisor/cli/sources.js';
import type { Config } from '../supervisor/config.js';
import { refused } from './helpers/usage.js';

const HELP_HINT = 'run baton --help for the options';
const CONFIG_HINT = 'give a JSON file whose keys are option names, e.g. {"listen": ["127.0.0.1:8080"], "drain": "5s"}';
const L = ['--listen', '127.0.0.1:8080'];
const RUN = ['--', 'true'];

function parse(args: string[], env: Record<string, string> = {}): Config {
  const saved = process.env;
  const kept = Object.entries(saved).filter(([k]) => !k.startsWith('BATON_'));
  process.env = { ...Object.fromEntries(kept), ...env };
  try {
    return parseOptions(args)!;
  } finally {
    process.env = saved;
  }
}

/** A config file in a directory of its own, removed after the test. */
function config(t: ExecutionContext, content: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'baton-options-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'baton.json');
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

test('nothing given: the defaults', (t) => {
  t.like(parse([...L, ...RUN]), {
    command: ['true'],
    backlog: 511,
    handover: 'pidfd',
    ready: { kind: 'grab' },
    readyTimeout: 60_000,
    checkTimeout: 60_000,
    drain: 5000,
    stopSignal: 'SIGTERM',
    killTimeout: 30_000,
    maxDraining: 4,
    workers: 1,
    surge: 1,
    subreaper: false,
    logFormat: 'text',
    steer: [],
    name: '127_0_0_1_8080',
    stateDir: '/run/baton/127_0_0_1_8080',
    force: false,
    keepSteering: false,
  });
  t.deepEqual(parse([...L, '--handover', 'inherit', ...RUN]).ready, { kind: 'delay', ms: 1000 });
});

test('each layer wins over the one below: default < --config < BATON_* < flag', (t) => {
  const file = config(t, { drain: '2s' });
  t.is(parse([...L, ...RUN]).drain, 5000);
  t.is(parse([...L, '--config', file, ...RUN]).drain, 2000);
  t.is(parse([...L, '--config', file, ...RUN], { BATON_DRAIN: '3s' }).drain, 3000);
  t.is(parse([...L, '--config', file, '--drain', '4s', ...RUN], { BATON_DRAIN: '3s' }).drain, 4000);
  t.is(parse([...L, '--config', file, '--drain=4s', ...RUN], { BATON_DRAIN: '3s' }).drain, 4000);
});

test('every layer can set any option, each option from its own layer', (t) => {
  const file = config(t, { 'kill-timeout': '1m', readyTimeout: '1.5s', workers: 3, 'log-format': 'json' });
  const env = { BATON_KILL_TIMEOUT: '2s', BATON_MAX_DRAINING: '1', BATON_STOP_SIGNAL: 'int' };
  t.like(parse([...L, '--config', file, '--workers', '2', ...RUN], env), {
    killTimeout: 2000,
    readyTimeout: 1500,
    workers: 2,
    logFormat: 'json',
    maxDraining: 1,
    stopSignal: 'SIGINT',
  });
});

test('an empty BATON_ variable falls through to the file', (t) => {
  const file = config(t, { drain: '2s' });
  t.is(parse([...L, '--config', file, ...RUN], { BATON_DRAIN: '' }).drain, 2000);
});

test('BATON_CONFIG names the file; --config wins over it', (t) => {
  const one = config(t, { drain: '1s' });
  const two = config(t, { drain: '2s' });
  t.is(parse([...L, ...RUN], { BATON_CONFIG: one }).drain, 1000);
  t.is(parse([...L, `--config=${two}`, ...RUN], { BATON_CONFIG: one }).drain, 2000);
});

test('a repeatable option: words of BATON_*, a list in the file; a layer above replaces it', (t) => {
  const env = { BATON_LISTEN: ' 127.0.0.1:1  [::1]:2 ' };
  t.deepEqual(
    parse(RUN, env).listen.map((s) => s.name),
    ['listener0', 'listener1'],
  );
  const file = config(t, { listen: ['127.0.0.1:3', 'b=127.0.0.1:4'] });
  t.deepEqual(
    parse(['--config', file, ...RUN]).listen.map((s) => s.name),
    ['listener0', 'b'],
  );
  t.deepEqual(
    parse([...L, '--config', file, ...RUN], env).listen.map((s) => s.name),
    ['listener0'],
  );
});

test('a boolean from BATON_* or --flag=VALUE: true/yes/on/1 or false/no/off/0, any case; --no-X wins', (t) => {
  for (const on of ['true', '1', 'yes', 'on', 'TRUE', ' Yes ']) {
    t.true(parse([...L, ...RUN], { BATON_FORCE: on }).force, on);
    t.true(parse([...L, `--force=${on}`, ...RUN]).force, on);
  }
  for (const off of ['false', '0', 'no', 'off', 'False']) {
    t.false(parse([...L, ...RUN], { BATON_KEEP_STEERING: off }).keepSteering, off);
    t.false(parse([...L, `--keep-steering=${off}`, ...RUN], { BATON_KEEP_STEERING: '1' }).keepSteering, off);
  }
  t.false(parse([...L, '--no-force', ...RUN], { BATON_FORCE: '1' }).force);
  const file = config(t, { subreaper: true });
  t.true(parse([...L, '--config', file, ...RUN]).subreaper);
  t.false(parse([...L, '--config', file, ...RUN], { BATON_SUBREAPER: 'false' }).subreaper);
  t.false(parse([...L, '--config', config(t, { subreaper: false }), ...RUN], { BATON_SUBREAPER: '' }).subreaper);
});

// F14: BATON_SUBREAPER=maybe and {"subreaper": "no"} were taken silently (as false); --subreaper=1 was false too.
const BOOLEAN_HINT = 'a boolean is true or false (also yes/no, on/off, 1/0)';
test('a boolean that is neither is refused, naming where it came from', (t) => {
  refused(
    t,
    () => parse([...L, ...RUN], { BATON_SUBREAPER: 'maybe' }),
    'bad value for BATON_SUBREAPER: "maybe"',
    BOOLEAN_HINT,
  );
  refused(t, () => parse([...L, ...RUN], { BATON_FORCE: '2' }), 'bad value for BATON_FORCE: "2"', BOOLEAN_HINT);
  refused(t, () => parse([...L, '--subreaper=maybe', ...RUN]), 'bad value for --subreaper: "maybe"', BOOLEAN_HINT);
  refused(t, () => parse([...L, '--force=', ...RUN]), 'bad value for --force: ""', BOOLEAN_HINT);
});

for (const value of ['no', 'true', 1, null]) {
  test(`a boolean in the config file is JSON true or false, not ${JSON.stringify(value)}`, (t) => {
    const file = config(t, { subreaper: value });
    const message = `bad value for "subreaper" in ${file}: ${JSON.stringify(value)}`;
    const hint = 'give true or false (a JSON boolean, not a string), e.g. {"subreaper": true}';
    refused(t, () => parse([...L, '--config', file, ...RUN]), message, hint);
  });
}

test("a --flag=VALUE after -- is the command's", (t) => {
  t.deepEqual(parse([...L, '--', 'sh', '--force=maybe']).command, ['sh', '--force=maybe']);
});

test("the file's command runs unless one follows --", (t) => {
  const file = config(t, { command: ['sh', '-c', 'exit 0', 7] });
  t.deepEqual(parse([...L, '--config', file]).command, ['sh', '-c', 'exit 0', '7']);
  t.deepEqual(parse([...L, '--config', file, '--', 'true', '1']).command, ['true', '1']);
});

test("a --config after -- is the command's", (t) => {
  const args = [...L, '--', 'sh', '--config', '/nonexistent.json'];
  t.deepEqual(layered(args, OPTIONS, {}), args);
  t.deepEqual(parse(args).command, ['sh', '--config', '/nonexistent.json']);
});

test('layering adds what is not given as a flag, before the flags', (t) => {
  const file = config(t, { drain: '2s', listen: ['127.0.0.1:1'] });
  t.deepEqual(
    layered(['--config', file, '--drain', '4s', '--', 'x'], OPTIONS, { BATON_SURGE: '2', BATON_DRAIN: '3s' }),
    ['--listen', '127.0.0.1:1', '--surge', '2', '--config', file, '--drain', '4s', '--', 'x'],
  );
});

test('--config without a value is refused', (t) => {
  refused(t, () => layered(['--config'], OPTIONS, {}), '--config needs a value', CONFIG_HINT);
  refused(t, () => layered(['--config', '--drain', '1s'], OPTIONS, {}), '--config needs a value', CONFIG_HINT);
});

test('a config file that cannot be read is refused', (t) => {
  const file = join(tmpdir(), 'baton-options-none', 'baton.json');
  refused(
    t,
    () => parse([...L, '--config', file, ...RUN]),
    `cannot read --config ${file}: ENOENT: no such file or directory, open '${file}'`,
    CONFIG_HINT,
  );
  const garbled = config(t, 'not json\nat all\n');
  const err = t.throws(() => parse([...L, '--config', garbled, ...RUN]));
  t.regex(err!.message, /^cannot read --config \S+: Unexpected token .* is not valid JSON$/);
});

const notObjects: Array<[string, string]> = [
  ['null', 'null'],
  ['[1]', 'an array'],
  ['"x"', 'a string'],
  ['4', 'a number'],
];
for (const [content, what] of notObjects) {
  test(`a config file holding ${what} is refused`, (t) => {
    const file = config(t, content);
    refused(
      t,
      () => parse([...L, '--config', file, ...RUN]),
      `--config ${file} is not a JSON object: ${what}`,
      CONFIG_HINT,
    );
  });
}

test('unknown keys in the config file are refused, all named', (t) => {
  const file = config(t, { drian: '1s', drain: '1s', lisen: [] });
  refused(
    t,
    () => parse([...L, '--config', file, ...RUN]),
    `unknown option in ${file}: drian, lisen`,
    'config keys are the long option names, e.g. "ready-timeout" or "readyTimeout"',
  );
});

const badValues: Array<[Record<string, unknown>, string, string]> = [
  [{ drain: { s: 1 } }, '"drain"', '{"s":1}'],
  [{ drain: ['1s'] }, '"drain"', '["1s"]'],
  [{ listen: [['127.0.0.1:1']] }, '"listen"', '[["127.0.0.1:1"]]'],
  [{ steer: [{}] }, '"steer"', '[{}]'],
];
for (const [content, key, shown] of badValues) {
  test(`config value ${shown} for ${key} is refused`, (t) => {
    const file = config(t, content);
    refused(t, () => parse([...L, '--config', file, ...RUN]), `bad value for ${key} in ${file}: ${shown}`, CONFIG_HINT);
  });
}

test('the config command must be a list of words', (t) => {
  const hint = 'give the command as a list, e.g. ["node", "server.js"]';
  const one = config(t, { command: 'node server.js' });
  refused(t, () => parse([...L, '--config', one]), `bad value for "command" in ${one}: "node server.js"`, hint);
  const two = config(t, { command: ['node', true] });
  refused(t, () => parse([...L, '--config', two]), `bad value for "command" in ${two}: ["node",true]`, hint);
});

test('a value from any layer is checked alike', (t) => {
  const file = config(t, { drain: 'soon' });
  const hint = 'use milliseconds or a unit: 500ms, 5s, 1m, 2h, 1d';
  refused(t, () => parse([...L, '--config', file, ...RUN]), 'bad duration for --drain: "soon"', hint);
  refused(t, () => parse([...L, ...RUN], { BATON_DRAIN: '1w' }), 'bad duration for --drain: "1w"', hint);
  refused(t, () => parse([...L, '--drain', '5 s', ...RUN]), 'bad duration for --drain: "5 s"', hint);
});

const WORKERS_HINT =
  "1024 processes per generation is the most (nginx's limit too); give fewer, see docs/cli.md#bounds";
const SURGE_HINT = 'give at most 1024: a --surge at or above --workers already starts every new worker at once';
const DRAINING_HINT = 'at least one old generation must drain; use --drain 0 to stop old generations at once';
const numbers: Array<[string, string, string, string]> = [
  ['workers', '0', '--workers must be a whole number from 1 to 1024 or auto, not "0"', WORKERS_HINT],
  ['workers', 'two', '--workers must be a whole number from 1 to 1024 or auto, not "two"', WORKERS_HINT],
  ['workers', '1025', '--workers must be a whole number from 1 to 1024 or auto, not "1025"', WORKERS_HINT],
  ['surge', '0', '--surge must be a whole number from 1 to 1024, not "0"', SURGE_HINT],
  ['surge', '1025', '--surge must be a whole number from 1 to 1024, not "1025"', SURGE_HINT],
  ['max-draining', '0', '--max-draining must be a whole number >= 1, not "0"', DRAINING_HINT],
  ['max-draining', '1.0', '--max-draining must be a whole number >= 1, not "1.0"', DRAINING_HINT],
  ['backlog', '1e3', '--backlog must be a whole number from 1 to 2147483647, not "1e3"', HELP_HINT],
  ['backlog', '2147483648', '--backlog must be a whole number from 1 to 2147483647, not "2147483648"', HELP_HINT],
  ['backlog', '0x10', '--backlog must be a whole number from 1 to 2147483647, not "0x10"', HELP_HINT],
  // F14: the input is echoed as given, whatever layer it came from
  ['backlog', '12abc', '--backlog must be a whole number from 1 to 2147483647, not "12abc"', HELP_HINT],
];
for (const [option, value, message, hint] of numbers) {
  test(`--${option} ${value} is refused`, (t) => {
    refused(t, () => parse([...L, `--${option}`, value, ...RUN]), message, hint);
  });
}

test('a bad number from the config file or the environment is echoed as given', (t) => {
  const message = '--backlog must be a whole number from 1 to 2147483647, not "12abc"';
  refused(t, () => parse([...L, '--config', config(t, { backlog: '12abc' }), ...RUN]), message, HELP_HINT);
  refused(t, () => parse([...L, ...RUN], { BATON_BACKLOG: '12abc' }), message, HELP_HINT);
});

test('whole numbers at their bounds, and --workers auto', (t) => {
  const bounds = ['--backlog', '2147483647', '--max-draining', '1', '--surge', '1024', '--workers', '1024'];
  t.like(parse([...L, ...bounds, ...RUN]), { backlog: 2 ** 31 - 1, maxDraining: 1, surge: 1024, workers: 1024 });
  t.like(parse([...L, '--surge', '1', '--workers', '1', ...RUN]), { surge: 1, workers: 1 });
  t.is(parse([...L, '--workers', 'auto', ...RUN]).workers, Math.min(availableParallelism(), 1024));
});

test('--check-timeout: a duration of its own, not --ready-timeout', (t) => {
  t.like(parse([...L, '--check', 'true', '--check-timeout', '2s', '--ready-timeout', '9s', ...RUN]), {
    check: 'true',
    checkTimeout: 2000,
    readyTimeout: 9000,
  });
  t.is(parse([...L, ...RUN], { BATON_CHECK_TIMEOUT: '1m' }).checkTimeout, 60_000);
  const hint = 'use at most 2147483647ms (about 24d)';
  refused(
    t,
    () => parse([...L, '--check-timeout', '25d', ...RUN]),
    '--check-timeout 25d is longer than baton can time (2147483647ms)',
    hint,
  );
});

test('--ready: notify, grab, probe:COMMAND or delay:DURATION', (t) => {
  t.deepEqual(parse([...L, '--ready', 'notify', ...RUN]).ready, { kind: 'notify' });
  t.deepEqual(parse([...L, '--ready', 'probe:curl -f x', ...RUN]).ready, { kind: 'probe', command: 'curl -f x' });
  t.deepEqual(parse([...L, '--ready', 'delay:250ms', ...RUN]).ready, { kind: 'delay', ms: 250 });
  const hint = 'use notify, grab, probe:<command> or delay:<duration>';
  refused(t, () => parse([...L, '--ready', 'probe:', ...RUN]), 'unknown --ready "probe:"', hint);
  refused(
    t,
    () => parse([...L, '--handover', 'inherit', '--ready', 'grab', ...RUN]),
    '--ready grab needs --handover pidfd or port, not inherit',
    'use --ready notify, probe:<command> or delay:<duration>',
  );
});

test('--handover port needs --steer, takes no --listen and no --workers', (t) => {
  const steer = ['--handover', 'port', '--steer', '10.0.0.1:80'];
  t.like(parse([...steer, ...RUN]), { handover: 'port', name: '10_0_0_1_80', listen: [] });
  refused(
    t,
    () => parse(['--handover', 'port', ...RUN]),
    '--handover port needs --steer',
    'give the address and port clients connect to, e.g. --steer 0.0.0.0:8080',
  );
  refused(
    t,
    () => parse([...steer, ...L, ...RUN]),
    '--handover port takes no --listen: each generation binds its own $PORT',
    'drop --listen, or use --handover pidfd',
  );
  refused(
    t,
    () => parse([...steer, '--workers', '2', ...RUN]),
    '--workers needs a shared listener, which --handover port does not have',
    'use --handover pidfd or inherit (with --steer if you need it)',
  );
});

test('the name comes from the first listener or rule, else --name, which must suit bpffs', (t) => {
  t.is(parse(['--listen', 'unix:/run/app.sock', ...RUN]).name, 'unix_run_app_sock');
  t.is(parse(['--listen', '[::1]:80', ...L, ...RUN]).name, '1_80');
  t.like(parse([...L, '--name', 'web-1', ...RUN]), { name: 'web-1', stateDir: '/run/baton/web-1' });
  t.is(parse([...L, '--state-dir', '/tmp/s', ...RUN]).stateDir, '/tmp/s');
  refused(
    t,
    () => parse([...L, '--name', 'a.b', ...RUN]),
    'bad --name "a.b"',
    'a name is 1-64 letters, digits, "_" or "-" (no dots: bpffs refuses them)',
  );
});

test('the control socket: --control, else beside --pid-file; its path is checked', (t) => {
  t.is(parse([...L, '--control', '/tmp/c.sock', '--pid-file', '/tmp/b.pid', ...RUN]).control, '/tmp/c.sock');
  t.like(parse([...L, '--pid-file', '/tmp/x/baton.pid', ...RUN]), {
    control: '/tmp/x/baton.sock',
    pidFile: '/tmp/x/baton.pid',
  });
  const long = `/tmp/${'p'.repeat(100)}.pid`;
  refused(
    t,
    () => parse([...L, '--pid-file', long, ...RUN]),
    `control socket path too long (max 107 bytes): ${long.replace(/\.pid$/, '.sock')}`,
    'give a shorter --control (or --pid-file) path',
  );
  refused(
    t,
    () => parse(['--listen', 'unix:/tmp/c.sock', '--control', '/tmp/c.sock', ...RUN]),
    'the control socket /tmp/c.sock is also a --listen',
    'give --control another path (by default it sits beside --pid-file)',
  );
});

test('the command is everything after --, as written', (t) => {
  const env = { BATON_DRAIN: '3s' };
  t.like(parse([...L, '--', 'sh', '-c', 'exit 0', '--drain', '1s'], env), {
    command: ['sh', '-c', 'exit 0', '--drain', '1s'],
    drain: 3000,
  });
  t.deepEqual(parse([...L, '--', 'true', '007', '1e3']).command, ['true', '007', '1e3']);
  refused(t, () => parse([...L, '--', '-x']), 'unknown option -x', HELP_HINT);
});

test('usage errors of the command line itself', (t) => {
  refused(
    t,
    () => parse(RUN),
    'Missing required argument: listen',
    'give at least one --listen ADDRESS, e.g. --listen 127.0.0.1:8080',
  );
  refused(
    t,
    () => parse(L),
    'no command to run',
    'put the server command after --, e.g. baton --listen :8080 -- node server.js',
  );
  refused(t, () => parse([...L, '--frobnicate', ...RUN]), 'Unknown argument: frobnicate', HELP_HINT);
  refused(t, () => parse([...L, '--drain', ...RUN]), '--drain needs a value', HELP_HINT);
  refused(t, () => parse([...L, '--log-format', 'xml', ...RUN]), 'bad --log-format "xml"', 'use one of "text", "json"');
  refused(t, () => parse([...L, '--group', 'root', ...RUN]), '--group needs --user', 'give --user too');
});

test('a command that cannot run is a runtime error, not a usage error', (t) => {
  refused(
    t,
    () => parse([...L, '--', 'baton-no-such-command']),
    'command not found: baton-no-such-command',
    'check the spelling, install it, or give its full path',
    'ERR_BATON_COMMAND',
  );
});
