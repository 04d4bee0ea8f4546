import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import test, { type ImplementationFn } from 'ava';
import { OPTIONS } from '../supervisor/cli/option-table.js';
import { Baton, childrenOf, cli, fixture } from './helpers/baton.js';
import { Leftovers, limited, refuses, runBaton, scratch, traced } from './helpers/leftovers.js';
import { get } from './helpers/load.js';
import { needs } from './helpers/needs.js';
import { readOr, until } from './helpers/procs.js';

/** A port nothing listens on right now. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const exactly = (s: string) => new RegExp(`^${esc(s)}$`);

const LISTEN_HINT = exactly(
  'use HOST:PORT, [IPV6]:PORT, :PORT (all addresses) or unix:/path, e.g. --listen 127.0.0.1:8080',
);
const PORT_HINT = /^a port is a number from 0 to 65535$/;
const HELP_HINT = /^run baton --help for the options$/;
const CONFIG_HINT = /^give a JSON file whose keys are option names/;
const DURATION_HINT = /^use milliseconds or a unit: 500ms, 5s, 1m, 2h, 1d$/;
const READY_HINT = /^use notify, grab, probe:<command> or delay:<duration>$/;
const START_HINT = /^run the command by hand to see why it does not start, or raise --ready-timeout$/;
const L = ['--listen', '127.0.0.1:0'];
// Run as a user without privileges: root drops to nobody through setpriv; any other user already is one.
const root = process.getuid?.() === 0;
const unprivileged = root ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all'] : [];
type Declare = (title: string, fn: ImplementationFn<[]>) => void;
const asUnprivileged: Declare = root ? needs('setpriv') : test;
// The highest port only root may bind (none where ip_unprivileged_port_start is 0, as in some containers).
const privilegedPort = Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8')) - 1;
const withPrivilegedPort: Declare =
  privilegedPort > 0 ? asUnprivileged : (title, fn) => test.skip(`${title} [skipped: needs a privileged port]`, fn);

// ---- usage errors: exit 2, before anything is opened ----

test('no command', async (t) => {
  await refuses(t, L, 2, /^no command to run$/, /^put the server command after --/);
});

test('no --listen', async (t) => {
  await refuses(t, ['--', 'true'], 2, /^Missing required argument: listen$/, /^give at least one --listen ADDRESS/);
});

test('unknown option', async (t) => {
  await refuses(t, [...L, '--frobnicate', '--', 'true'], 2, /^Unknown argument: frobnicate$/, HELP_HINT);
});

test('an option without its value is refused, not left at its default', async (t) => {
  await refuses(t, [...L, '--drain', '--', 'true'], 2, /^--drain needs a value$/, HELP_HINT);
  await refuses(t, [...L, '--config', '--', 'true'], 2, /^--config needs a value$/, CONFIG_HINT);
});

const badListen: Array<[string, RegExp, RegExp]> = [
  ['8080', /^malformed --listen 8080$/, LISTEN_HINT],
  ['localhost:8080', /^"localhost" is not an IP address in --listen localhost:8080$/, LISTEN_HINT],
  ['127.0.0.1:99999', /^bad port "99999" in --listen 127\.0\.0\.1:99999$/, PORT_HINT],
  ['[::1:80', /^malformed --listen \[::1:80$/, LISTEN_HINT],
  ['[::g]:80', /^bad IPv6 address "::g" in --listen \[::g\]:80$/, LISTEN_HINT],
  ['unix:relative.sock', /^unix socket path must be absolute: --listen unix:relative\.sock$/, LISTEN_HINT],
  ['1.2.3.4:', /^bad port "" in --listen 1\.2\.3\.4:$/, PORT_HINT],
  [`unix:/${'x'.repeat(107)}`, /^unix socket path too long \(max 107 bytes\)/, /^choose a shorter path$/],
  ['bad name=127.0.0.1:0', /^bad listener name "bad name"$/, /^a name is 1-64 letters/],
  // F14: a zone id used to reach the socket code: a stack trace and "this is a bug in baton"
  ['[fe80::1%lo]:8089', /^IPv6 zone ids are not supported: --listen \[fe80::1%lo\]:8089$/, /^drop the %ZONE: /],
  ['[::1%lo]:0', /^IPv6 zone ids are not supported: --listen \[::1%lo\]:0$/, /^drop the %ZONE: /],
];
for (const [bad, error, hint] of badListen) {
  test(`malformed --listen ${bad.slice(0, 40)}`, async (t) => {
    await refuses(t, ['--listen', bad, '--', 'true'], 2, error, hint);
  });
}

test('the same --listen twice', async (t) => {
  const args = [...L, '--listen', '127.0.0.1:8080', '--listen', '127.0.0.1:8080', '--', 'true'];
  await refuses(
    t,
    args,
    2,
    exactly('--listen 127.0.0.1:8080 (listener2) is given twice'),
    /^give each address and name once$/,
  );
});

// F14: the second of two overlapping listeners failed at bind, blamed on "another process".
for (const [a, b] of [
  ['127.0.0.1', '[::]'],
  ['', '0.0.0.0'],
]) {
  test(`--listen ${a}:PORT with --listen ${b}:PORT: refused naming both, nothing bound`, async (t) => {
    const port = await freePort();
    const x = `--listen ${a || '[::]'}:${port} (listener0)`;
    await refuses(
      t,
      ['--listen', `${a}:${port}`, '--listen', `${b}:${port}`, '--', 'true'],
      2,
      exactly(`${x} and --listen ${b}:${port} (listener1) overlap: they cannot both listen on port ${port}`),
      /^give only one of them: \[::\]:PORT \(or :PORT\) listens on every address/,
    );
  });
}

test('the control socket is also a --listen', async (t) => {
  const sock = join(scratch(t), 'both.sock');
  await refuses(
    t,
    ['--listen', `unix:${sock}`, '--control', sock, '--', 'true'],
    2,
    exactly(`the control socket ${sock} is also a --listen`),
    /^give --control another path/,
  );
});

test('bad signal name', async (t) => {
  await refuses(
    t,
    [...L, '--stop-signal', 'SIGFOO', '--', 'true'],
    2,
    /^unknown signal for --stop-signal: "SIGFOO"$/,
    /^use a name such as SIGTERM/,
  );
});

test('bad duration', async (t) => {
  await refuses(t, [...L, '--drain', 'soon', '--', 'true'], 2, /^bad duration for --drain: "soon"$/, DURATION_HINT);
});

// Node fires a timer over 2^31-1 ms after 1 ms: --kill-timeout 9999999999 would SIGKILL at once.
for (const [option, value] of [
  ['kill-timeout', '9999999999'],
  ['drain', '40000m'],
  ['ready-timeout', '25d'],
  ['check-timeout', '25d'],
]) {
  test(`--${option} ${value}, longer than a timer can wait: a usage error, nothing started`, async (t) => {
    await refuses(
      t,
      [...L, `--${option}`, value, '--', 'true'],
      2,
      exactly(`--${option} ${value} is longer than baton can time (2147483647ms)`),
      /^use at most 2147483647ms/,
    );
  });
}

const WORKERS_HINT = exactly(
  "1024 processes per generation is the most (nginx's limit too); give fewer, see docs/cli.md#bounds",
);
const SURGE_HINT = /^give at most 1024: a --surge at or above --workers already starts every new worker at once$/;
const DRAINING_HINT = /^at least one old generation must drain; use --drain 0 to stop old generations at once$/;
const badNumbers: Array<[string, string, string, RegExp]> = [
  ['workers', '0', 'from 1 to 1024 or auto', WORKERS_HINT],
  ['workers', '-1', 'from 1 to 1024 or auto', WORKERS_HINT],
  ['workers', 'abc', 'from 1 to 1024 or auto', WORKERS_HINT],
  ['workers', '1.5', 'from 1 to 1024 or auto', WORKERS_HINT],
  ['workers', '1e1', 'from 1 to 1024 or auto', WORKERS_HINT],
  // F6: 100000 workers forked until the OOM killer took baton itself
  ['workers', '100000', 'from 1 to 1024 or auto', WORKERS_HINT],
  ['workers', '1025', 'from 1 to 1024 or auto', WORKERS_HINT],
  ['surge', '0', 'from 1 to 1024', SURGE_HINT],
  ['surge', 'abc', 'from 1 to 1024', SURGE_HINT],
  ['surge', '1.5', 'from 1 to 1024', SURGE_HINT],
  ['surge', '1025', 'from 1 to 1024', SURGE_HINT],
  ['backlog', '0', 'from 1 to 2147483647', HELP_HINT],
  ['backlog', '-5', 'from 1 to 2147483647', HELP_HINT],
  ['backlog', 'abc', 'from 1 to 2147483647', HELP_HINT],
  // listen(2) takes an int: 4294967297 used to wrap to a backlog of 1
  ['backlog', '4294967297', 'from 1 to 2147483647', HELP_HINT],
  // F14: --max-draining 0 SIGKILLed every old generation the moment an upgrade succeeded
  ['max-draining', '0', '>= 1', DRAINING_HINT],
  ['max-draining', '-1', '>= 1', DRAINING_HINT],
  ['max-draining', 'abc', '>= 1', DRAINING_HINT],
  ['max-draining', '1.5', '>= 1', DRAINING_HINT],
];
for (const [option, value, range, hint] of badNumbers) {
  test(`--${option} ${value}`, async (t) => {
    const error = exactly(`--${option} must be a whole number ${range}, not "${value}"`);
    await refuses(t, [...L, `--${option}`, value, '--', 'true'], 2, error, hint);
  });
}

test('--workers with --handover port', async (t) => {
  await refuses(
    t,
    ['--handover', 'port', '--steer', '127.0.0.1:80', '--workers', '2', '--', 'true'],
    2,
    /^--workers needs a shared listener, which --handover port does not have$/,
    /^use --handover pidfd or inherit/,
  );
});

const badReady: Array<[string[], RegExp, RegExp]> = [
  [['--ready', 'bogus'], /^unknown --ready "bogus"$/, READY_HINT],
  [['--ready', 'probe:'], /^unknown --ready "probe:"$/, READY_HINT],
  [['--ready', 'delay:soon'], /^bad duration for --ready: "soon"$/, DURATION_HINT],
  [
    ['--ready', 'grab', '--handover', 'inherit'],
    /^--ready grab needs --handover pidfd or port, not inherit$/,
    /^use --ready notify, probe:<command> or delay:<duration>$/,
  ],
];
for (const [args, error, hint] of badReady) {
  test(`bad ${args.join(' ')}`, async (t) => {
    await refuses(t, [...L, ...args, '--', 'true'], 2, error, hint);
  });
}

test('unknown --user', async (t) => {
  await refuses(
    t,
    [...L, '--user', 'no-such-user-baton', '--', 'true'],
    2,
    /^no such user: --user no-such-user-baton$/,
    /^give an existing user name or a numeric uid$/,
  );
});

test('unknown --group', async (t) => {
  await refuses(
    t,
    [...L, '--user', 'nobody', '--group', 'no-such-group-baton', '--', 'true'],
    2,
    /^no such group: --group no-such-group-baton$/,
    /^give an existing group name or a numeric gid$/,
  );
});

test('--group without --user', async (t) => {
  await refuses(t, [...L, '--group', '0', '--', 'true'], 2, /^--group needs --user$/, /^give --user too$/);
});

asUnprivileged('--user when baton is not root', async (t) => {
  await refuses(
    t,
    [...L, '--user', 'nobody', '--', 'true'],
    2,
    /^--user needs baton to run as root$/,
    /^start baton as root, or drop --user$/,
    { prefix: unprivileged },
  );
});

test('bad --log-format', async (t) => {
  await refuses(
    t,
    [...L, '--log-format', 'xml', '--', 'true'],
    2,
    /^bad --log-format "xml"$/,
    /^use one of "text", "json"$/,
  );
});

test('bad --handover', async (t) => {
  await refuses(
    t,
    [...L, '--handover', 'bogus', '--', 'true'],
    2,
    /^bad --handover "bogus"$/,
    /^use one of "pidfd", "inherit", "port"$/,
  );
});

test('--handover port without --steer, and with --listen', async (t) => {
  await refuses(
    t,
    ['--handover', 'port', '--', 'true'],
    2,
    /^--handover port needs --steer$/,
    /^give the address and port clients connect to/,
  );
  await refuses(
    t,
    ['--handover', 'port', '--steer', '127.0.0.1:80', ...L, '--', 'true'],
    2,
    exactly('--handover port takes no --listen: each generation binds its own $PORT'),
    exactly('drop --listen, or use --handover pidfd'),
  );
});

const badNames: Array<[string, string]> = [
  ['a.b', 'a dot'],
  ['', 'empty'],
  ['x'.repeat(65), '65 characters'],
];
for (const [name, what] of badNames) {
  test(`bad --name (${what})`, async (t) => {
    await refuses(
      t,
      [...L, '--name', name, '--', 'true'],
      2,
      exactly(`bad --name "${name}"`),
      exactly('a name is 1-64 letters, digits, "_" or "-" (no dots: bpffs refuses them)'),
    );
  });
}

const badConfigs: Array<[string, string | undefined, RegExp, RegExp]> = [
  ['missing', undefined, /^cannot read --config \S+: ENOENT: no such file or directory/, CONFIG_HINT],
  ['not JSON', 'not json\nat all\n', /^cannot read --config \S+: Unexpected token .* is not valid JSON$/, CONFIG_HINT],
  ['null', 'null', /^--config \S+ is not a JSON object: null$/, CONFIG_HINT],
  ['an array', '["--drain", "1s"]', /^--config \S+ is not a JSON object: an array$/, CONFIG_HINT],
  ['a string', '"--drain 1s"', /^--config \S+ is not a JSON object: a string$/, CONFIG_HINT],
  ['an unknown key', '{"drian": "1s"}', /^unknown option in \S+: drian$/, /^config keys are the long option names/],
  ['an object value', '{"drain": {"s": 1}}', /^bad value for "drain" in \S+: \{"s":1\}$/, CONFIG_HINT],
  // F14: a string for a boolean was taken silently
  ['a string for a boolean', '{"subreaper": "no"}', /^bad value for "subreaper" in \S+: "no"$/, /^give true or false/],
  [
    'a command that is not a list',
    '{"command": "node server.js"}',
    /^bad value for "command" in \S+: "node server\.js"$/,
    /^give the command as a list/,
  ],
];
for (const [what, content, error, hint] of badConfigs) {
  test(`bad --config: ${what}`, async (t) => {
    const file = join(scratch(t), 'baton.json');
    if (content !== undefined) writeFileSync(file, content);
    await refuses(t, [...L, '--config', file, '--', 'true'], 2, error, hint);
  });
}

// F14: accepted silently, as false
for (const [env, flag] of [
  [{ BATON_SUBREAPER: 'maybe' }, []],
  [{}, ['--subreaper=maybe']],
] as const) {
  const where = flag.length ? '--subreaper' : 'BATON_SUBREAPER';
  test(`${flag.length ? flag[0] : 'BATON_SUBREAPER=maybe'}: a usage error`, async (t) => {
    const error = exactly(`bad value for ${where}: "maybe"`);
    await refuses(t, [...L, ...flag, '--', 'true'], 2, error, /^a boolean is true or false \(also yes\/no/, { env });
  });
}

for (const value of ['soon', '-1']) {
  test(`baton reload --timeout ${value}: a usage error`, async (t) => {
    const control = join(scratch(t), 'none.sock');
    await refuses(
      t,
      ['reload', '--control', control, '--wait', '--timeout', value],
      2,
      exactly(`bad duration for --timeout: "${value}"`),
      DURATION_HINT,
    );
  });
}

test(
  'baton reload --timeout 40000m: a usage error (the client ' + 'waits 5 s longer, within the timer limit)',
  async (t) => {
    const control = join(scratch(t), 'none.sock');
    await refuses(
      t,
      ['reload', '--control', control, '--wait', '--timeout', '40000m'],
      2,
      exactly('--timeout 40000m is longer than baton can time (2147478647ms)'),
      /^use at most 2147478647ms/,
    );
  },
);

test('baton reload --timeout 0: a usage error, checked before anything is sent', async (t) => {
  const control = join(scratch(t), 'none.sock');
  await refuses(
    t,
    ['reload', '--control', control, '--wait', '--timeout', '0'],
    2,
    /^--timeout must be more than 0$/,
    /^e\.g\. --timeout 30s$/,
  );
});

test('baton reload --timeout without a value: a usage error', async (t) => {
  const control = join(scratch(t), 'none.sock');
  await refuses(
    t,
    ['reload', '--control', control, '--wait', '--timeout'],
    2,
    /^--timeout needs a value$/,
    /^run baton reload --help$/,
  );
});

// ---- runtime refusals: exit 1, whatever was opened is closed again ----

test('missing executable: nothing is bound', async (t) => {
  const sock = join(scratch(t), 'missing.sock');
  await refuses(
    t,
    ['--listen', `unix:${sock}`, '--', 'no-such-command-baton'],
    1,
    /^command not found: no-such-command-baton$/,
    /^check the spelling, install it, or give its full path$/,
  );
});

test('a command that is not executable', async (t) => {
  const file = join(scratch(t), 'script');
  writeFileSync(file, 'echo hi\n', { mode: 0o644 });
  await refuses(
    t,
    [...L, '--', file],
    1,
    exactly(`not an executable file: ${file}`),
    exactly(`chmod +x ${file}, or run it through its interpreter`),
  );
});

// The fault review's F14: Node's module loader hit EMFILE before baton's code ran, printing its own stack.
test('too low a ulimit -n is refused before baton loads; at the limit it names baton starts and serves', async (t) => {
  const fds = (n: number) => ['sh', '-c', `ulimit -n ${n} && exec "$@"`, 'sh'];
  const hint = /^raise the limit \(ulimit -n (\d+) or more; systemd: LimitNOFILE=\)$/;
  let need = 0;
  for (const n of [24, 48, 62]) {
    const error = new RegExp(`^too few file descriptors \\(ulimit -n ${n}, \\d+ open\\): baton needs at least (\\d+)$`);
    const r = await refuses(t, [...L, '--', ...traced('node', fixture)], 1, error, hint, { prefix: fds(n) });
    need = Number(/needs at least (\d+)/.exec(r.stderr)?.[1]);
    t.regex(r.stderr, new RegExp(`ulimit -n ${need} or more`), 'the hint names the same number');
  }
  // 56 free beyond what Node itself holds (17-18 here, depending on its stdio): about 74.
  t.true(need >= 66 && need <= 76, `needs ${need}`);
  const baton = new Baton([...L, '--drain', '100ms', '--', 'node', fixture], {}, fds(need));
  try {
    const port = await baton.port();
    const first = await baton.event('active', 1);
    t.regex(await get(port), new RegExp(`^pid=${first.pid} generation=1 `));
    await baton.upgradeTo(2);
    await baton.event('exit', 1);
    t.regex(await get(port), /^pid=\d+ generation=2 /);
  } finally {
    t.is((await baton.stop()).code, 0);
  }
});

test('address in use: the listeners opened before it are closed again', async (t) => {
  const sock = join(scratch(t), 'inuse.sock');
  const busy = net.createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
  const port = (busy.address() as net.AddressInfo).port;
  try {
    await refuses(
      t,
      ['--listen', `unix:${sock}`, '--listen', `127.0.0.1:${port}`, '--', 'node', fixture],
      1,
      /^bind: Address already in use \(EADDRINUSE\)$/,
      // The holder is this test's own process: named, with how to stop it.
      new RegExp(
        `^another process listens on this address: pid ${process.pid} \\(.*node.*\\); ` +
          `stop it \\(kill ${process.pid}\\)`,
      ),
    );
  } finally {
    busy.close();
  }
});

test('a --listen path that is not a socket is left alone', async (t) => {
  const file = join(scratch(t), 'plain');
  writeFileSync(file, 'mine\n');
  await refuses(
    t,
    ['--listen', `unix:${file}`, '--', 'true'],
    1,
    exactly(`${file} exists and is not a socket`),
    /^remove it or choose another path$/,
  );
  t.is(readFileSync(file, 'utf8'), 'mine\n');
});

// Listeners open in order: the unix one is bound (by an unprivileged user, in a directory it may write)
// before the privileged port is refused, so "it is gone again" can fail.
withPrivilegedPort('privileged port without the right: the listener opened before it is closed again', async (t) => {
  const sock = join(scratch(t), 'first.sock');
  await refuses(
    t,
    ['--listen', `unix:${sock}`, '--listen', `127.0.0.1:${privilegedPort}`, '--', 'true'],
    1,
    /^bind: Permission denied \(EACCES\)$/,
    /CAP_NET_BIND_SERVICE/,
    { prefix: unprivileged },
  );
});

test('unwritable pid file: listener closed, nothing started', async (t) => {
  const sock = join(scratch(t), 'pidfile.sock');
  await refuses(
    t,
    ['--listen', `unix:${sock}`, '--pid-file', '/proc/baton.pid', '--', 'node', fixture],
    1,
    /^cannot write pid file \/proc\/baton\.pid: (ENOENT|EACCES)$/,
    exactly('make /proc writable for this user, or choose another --pid-file'),
  );
});

test('pid file of a running process is refused with its pid, and left alone', async (t) => {
  const dir = scratch(t);
  const pidFile = join(dir, 'running.pid');
  writeFileSync(pidFile, `${process.pid}\n`);
  await refuses(
    t,
    ['--listen', `unix:${join(dir, 'l.sock')}`, '--pid-file', pidFile, '--', 'true'],
    1,
    exactly(`pid file ${pidFile} names a running process (pid ${process.pid})`),
    exactly(`stop it first (kill ${process.pid}), or choose another --pid-file`),
  );
  t.is(readFileSync(pidFile, 'utf8'), `${process.pid}\n`);
});

test('control socket of a running baton: refused after logging, its listeners closed', async (t) => {
  const dir = scratch(t);
  const control = join(dir, 'control.sock');
  const first = new Baton([...L, '--control', control, '--', 'node', fixture]);
  try {
    await first.event('active', 1);
    const args = ['--listen', `unix:${join(dir, 'second.sock')}`, '--control', control];
    await refuses(
      t,
      [...args, '--', ...traced('node', fixture)],
      1,
      exactly(`control socket ${control} belongs to a running baton (pid ${first.pid})`),
      new RegExp(`^stop it first \\(kill ${first.pid}\\)`),
      { logged: true },
    );
    t.true(existsSync(control), "the running baton's control socket is left alone");
  } finally {
    await first.stop();
  }
});

test('a stale pid file is replaced, and removed on stop', (t) =>
  limited(async () => {
    const pidFile = join(scratch(t), 'stale.pid');
    writeFileSync(pidFile, '999999\n');
    const baton = new Baton([...L, '--pid-file', pidFile, '--', 'node', fixture]);
    try {
      await baton.event('active', 1);
      t.regex(String(baton.events.find((e) => e.event === 'stale-pid-file')?.message), /dead pid 999999/);
      t.is(readFileSync(pidFile, 'utf8'), `${baton.pid}\n`);
    } finally {
      await baton.stop();
    }
    t.false(existsSync(pidFile));
  }));

// ---- generation 1 fails: exit 1, after it was started ----

test('generation 1 exits before ready: nothing left (JSON log)', async (t) => {
  const dir = scratch(t);
  const args = ['--listen', `unix:${join(dir, 'l.sock')}`, '--pid-file', join(dir, 'gen1.pid'), '--log-format', 'json'];
  await refuses(
    t,
    [...args, '--', ...traced('node', fixture, 'exit-before-ready')],
    1,
    /^generation 1 failed: exited with code 3 before ready$/,
    START_HINT,
    { spawns: true },
  );
});

test('generation 1 not ready in time: it and its own child are killed (text log)', async (t) => {
  const args = [...L, '--control', join(scratch(t), 'c.sock'), '--ready', 'notify', '--ready-timeout', '1s'];
  // a child in the generation's process group, which outlives its parent unless baton kills the group
  const command = traced('sh', '-c', `sleep 60 & exec node ${fixture} never-ready`);
  const r = await refuses(
    t,
    [...args, '--', ...command],
    1,
    /^generation 1 failed: not ready within 1000ms$/,
    START_HINT,
    { spawns: true },
  );
  t.is(r.spawned.length, 1);
});

test('one worker of generation 1 fails: the other is stopped too', async (t) => {
  const args = [...L, '--control', join(scratch(t), 'c.sock'), '--workers', '2', '--log-format', 'json'];
  const r = await refuses(
    t,
    [...args, '--', ...traced('node', fixture, 'exit-before-ready', '1', '1')],
    1,
    /^generation 1 failed: exited with code 3 before ready$/,
    START_HINT,
    { spawns: true },
  );
  t.is(new Set(r.spawned).size, 2, 'both workers were started');
});

test('the command after -- is passed on as written (no number parsing)', async (t) => {
  const command = traced('node', '-e', "console.log(process.argv.slice(1).join(' '))", '0x10', '1e3', '1.50', '007');
  const r = await refuses(
    t,
    [...L, '--control', join(scratch(t), 'c.sock'), '--', ...command],
    1,
    /^generation 1 failed: exited with code 0 before ready$/,
    START_HINT,
    { spawns: true },
  );
  t.is(r.stdout.trim(), '0x10 1e3 1.50 007');
});

test("the command's own --config is the command's", async (t) => {
  const command = traced('sh', '-c', 'exit 5', 'sh', '--config', '/nonexistent.json');
  // (and the default control socket, in the helper's private XDG_RUNTIME_DIR, is removed)
  await refuses(t, [...L, '--', ...command], 1, /^generation 1 failed: exited with code 5 before ready$/, START_HINT, {
    spawns: true,
  });
});

test('the directories baton created for its control socket are removed again', async (t) => {
  const control = join(scratch(t), 'made', 'by', 'baton', 'control.sock');
  await refuses(
    t,
    [...L, '--control', control, '--', ...traced('sh', '-c', 'exit 4')],
    1,
    /^generation 1 failed: exited with code 4 before ready$/,
    START_HINT,
    { spawns: true },
  );
});

// The check itself can fail: a generation 1 that escapes baton's process group (a session of its own)
// with the listener, and leaves a directory in baton's TMPDIR, is reported on all three counts.
test('the leftovers check sees a process, a listener and a runtime directory left behind', async (t) => {
  const stdio = "['ignore', 'ignore', 'ignore', 3]";
  const escaper = `require('child_process').spawn('sleep', ['30'], { detached: true, stdio: ${stdio} }).unref()`;
  const command = traced('sh', '-c', `node -e "${escaper}" && mkdir "$TMPDIR/baton-planted" && exit 3`);
  const control = join(scratch(t), 'c.sock');
  const args = [...L, '--control', control, '--handover', 'inherit', '--ready', 'delay:10s', '--', ...command];
  const watch = new Leftovers(args);
  const r = await runBaton(args, watch.env);
  const left = await watch.check(r.stderr);
  t.is(r.code, 1, r.stderr);
  const port = /listening listener=127\.0\.0\.1:(\d+)/.exec(r.stderr)?.[1];
  t.is(left.length, 3, left.join('\n'));
  t.regex(left.find((l) => l.startsWith('process left behind')) ?? '', /\(sleep 30\)$/);
  t.true(left.includes(`a socket still listens on port ${port}`), left.join('\n'));
  t.true(left.includes('left behind in TMPDIR: baton-planted (empty)'), left.join('\n'));
});

// ---- what baton prints, and what its options do ----

test('--help lists every option with its description, and exits 0', (t) => {
  const out = execFileSync(cli, ['--help'], { encoding: 'utf8' });
  const listed = [...out.matchAll(/^ {2}--([a-z][a-z-]*)/gm)].map((m) => m[1]!);
  t.deepEqual(listed.sort(), [...Object.keys(OPTIONS), 'help', 'version'].sort());
  const flat = out.replace(/\s+/g, ' ');
  for (const [name, o] of Object.entries(OPTIONS)) {
    t.true(flat.includes(`--${name} ${o.describe.replace(/\s+/g, ' ')}`), `--${name} and its description`);
  }
});

test('text log lines carry time, generation, pid and event', (t) =>
  limited(async () => {
    // notify: the fixture says READY=1 once its SIGTERM handler is in place (a grab can come before it).
    const args = [...L, '--control', join(scratch(t), 'c.sock'), '--ready', 'notify', '--', 'node', fixture];
    const child = spawn(cli, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const exited = new Promise((r) => child.once('exit', r));
    let stderr = '';
    const active = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 20_000);
      const done = (ok: boolean) => {
        clearTimeout(timer);
        resolve(ok);
      };
      child.stderr.on('data', (d: Buffer) => {
        stderr += d;
        if (/\] active/.test(stderr)) done(true);
      });
      void exited.then(() => done(/\] active/.test(stderr)));
    });
    child.kill('SIGTERM');
    await exited;
    t.true(active, `generation 1 active within 20 s:\n${stderr}`);
    const time = String.raw`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`;
    const line = (rest: string) => new RegExp(`^\\[${time} ${rest}$`, 'm');
    t.regex(stderr, line(String.raw`baton pid=\d+\] listening listener=127\.0\.0\.1:\d+ name=listener0 fd=\d+`));
    t.regex(stderr, line(String.raw`gen=1 pid=\d+\] ready worker=0 grab=\d+ ready=\d+`));
    const exit = String.raw`exit exited with code 0 worker=0 code=0 grab=\d+ ready=\d+ stop=\d+ exit=\d+`;
    t.regex(stderr, line(String.raw`gen=1 pid=\d+\] ${exit}`));
  }));

/** Length of the accept queue of the LISTEN socket on `port`, from the kernel's table (rx_queue). */
function acceptQueue(port: number): number | undefined {
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const f = line.trim().split(/\s+/);
      if (f[3] === '0A' && parseInt(f[1]!.split(':')[1]!, 16) === port) return parseInt(f[4]!.split(':')[1]!, 16);
    }
  }
  return undefined;
}

// The kernel's own count: with nobody accepting (baton never does; `sleep` holds the inherited listener),
// a listener with backlog N queues N + 1 connections (sk_acceptq_is_full is "more than N") and drops the
// SYNs of the rest, also when they are sent again (after 1 s).
for (const backlog of [3, 12]) {
  test(`--backlog ${backlog}: the listener queues ${backlog + 1} connections nobody accepts, no more`, (t) =>
    limited(async () => {
      const args = ['--backlog', String(backlog), '--handover', 'inherit', '--ready', 'delay:0'];
      const baton = new Baton([...L, ...args, '--', 'sleep', '60']);
      const clients: net.Socket[] = [];
      try {
        await baton.event('active', 1);
        const port = await baton.port();
        for (let i = 0; i < backlog + 4; i++) {
          clients.push(net.connect(port, '127.0.0.1').on('error', () => {}));
          await new Promise((r) => setTimeout(r, 10));
        }
        const deadline = Date.now() + 5000;
        while ((acceptQueue(port) ?? 0) < backlog + 1 && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 20));
        }
        t.is(acceptQueue(port), backlog + 1);
        await new Promise((r) => setTimeout(r, 1500));
        t.is(acceptQueue(port), backlog + 1, 'the retried SYNs were dropped too');
        t.is(clients.filter((c) => !c.connecting).length, backlog + 1, 'the clients that got a SYN-ACK');
      } finally {
        for (const c of clients) c.destroy();
        await baton.stop();
      }
    }));
}

/** Field `i` of the line of `name` in /etc/passwd or /etc/group. */
function entry(file: string, name: string, i: number): number {
  const line = readFileSync(file, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  return Number(line!.split(':')[i]);
}

/** Uid, Gid (real, effective, saved, fs) and supplementary groups of `pid`, from /proc/PID/status. */
function credentials(pid: number): { uid: string; gid: string; groups: string } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (k: string) => (new RegExp(`^${k}:(.*)$`, 'm').exec(status)?.[1] ?? '').trim().replace(/\s+/g, ' ');
  return { uid: field('Uid'), gid: field('Gid'), groups: field('Groups') };
}

const groups: Array<[string, string[], () => number]> = [
  ['--group daemon', ['--group', 'daemon'], () => entry('/etc/group', 'daemon', 2)],
  ['--group 4242 (a number)', ['--group', '4242'], () => 4242],
  ["no --group: the user's own", [], () => entry('/etc/passwd', 'nobody', 3)],
];
for (const [what, args, gid] of groups) {
  needs('root')(
    `--user nobody, ${what}: the generation runs with that uid and gid, and the groups initgroups gives`,
    (t) =>
      limited(async () => {
        const as = ['--user', 'nobody', ...args, '--handover', 'inherit', '--ready', 'delay:0'];
        const baton = new Baton([...L, ...as, '--', 'sleep', '60']);
        try {
          await baton.event('active', 1);
          const [pid, ...more] = childrenOf(baton.pid);
          t.deepEqual(more, [], 'one generation');
          // `--ready delay:0` counts it active at once, perhaps while it is still setpriv, as root.
          await until('sleep in place of setpriv', () => readOr(`/proc/${pid}/comm`).trim() === 'sleep' || undefined);
          const g = gid();
          const u = entry('/etc/passwd', 'nobody', 2);
          t.deepEqual(credentials(pid!), { uid: `${u} ${u} ${u} ${u}`, gid: `${g} ${g} ${g} ${g}`, groups: String(g) });
        } finally {
          await baton.stop();
        }
      }),
  );
}
