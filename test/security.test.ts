import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import test from 'ava';
import { request } from '../supervisor/control/client.js';
import { NotifySocket } from '../supervisor/notify-socket.js';
import type { Status } from '../supervisor/status.js';
import { closeFd } from '../supervisor/sys/fd.js';
import { createNotifySocket, receiveAll, sendNotify } from '../supervisor/sys/socket.js';
import { Baton, cli, fixture, root } from './helpers/baton.js';
import { refuses } from './helpers/leftovers.js';
import { freePort, servedBy } from './helpers/load.js';
import { needs } from './helpers/needs.js';
import { until } from './helpers/procs.js';
import { SteerWorld } from './helpers/steer.js';

const NOBODY = 65534;
const asNobody = ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups'];

function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'baton-sec-'));
  chmodSync(dir, 0o755);
  return dir;
}

/** A root-owned file an attacker would like baton to overwrite or chmod. */
function victim(dir: string): string {
  const path = join(dir, 'victim.conf');
  writeFileSync(path, 'important root config\n', { mode: 0o644 });
  return path;
}

needs('setpriv')("symlinks planted for the pid file's temp names are never followed (H1)", async (t) => {
  const dir = scratch();
  const target = victim(dir);
  // A directory anyone may write but only owners may rename in (sticky, like /tmp): allowed for pid files.
  const shared = join(dir, 'shared');
  mkdirSync(shared);
  chmodSync(shared, 0o1777);
  const pidFile = join(shared, 'baton.pid');
  // The attacker (nobody) plants `baton.pid.<pid>.tmp -> victim` for the next pids, the old temp name: from one
  // process, so that planting uses up none of them (other tests' processes take some meanwhile).
  const first = Number(readFileSync('/proc/sys/kernel/ns_last_pid', 'utf8')) + 1;
  const last = first + 3000;
  const plant = `const [to, at] = process.argv.slice(1);
    for (let i = ${first}; i <= ${last}; i++) require('fs').symlinkSync(to, at + '.' + i + '.tmp');`;
  const node = [process.execPath, '-e', plant, target, pidFile];
  const planted = spawnSync(asNobody[0]!, [...asNobody.slice(1), ...node], { cwd: dir });
  t.is(planted.status, 0, String(planted.stderr));
  const b = new Baton(['--listen', '127.0.0.1:0', '--pid-file', pidFile, '--', 'node', fixture]);
  try {
    t.true(b.pid >= first && b.pid <= last, `baton's pid ${b.pid} is among those planted (${first}-${last})`);
    await b.event('active', 1);
    t.is(readFileSync(pidFile, 'utf8'), `${b.pid}\n`);
    t.is(readFileSync(target, 'utf8'), 'important root config\n', 'the victim is untouched');
  } finally {
    await b.stop();
  }
});

needs('root')(
  'a pid-file, control or listener directory another user owns is refused; nothing is left (H1, M4)',
  async (t) => {
    const dir = scratch();
    const theirs = join(dir, 'app');
    mkdirSync(theirs);
    chownSync(theirs, NOBODY, NOBODY);
    const sock = join(dir, 'l.sock');
    const hint = /^use a directory that only root or uid 0 can write/;
    await refuses(
      t,
      ['--listen', `unix:${sock}`, '--pid-file', join(theirs, 'b.pid'), '--', 'true'],
      1,
      new RegExp(`^refusing ${theirs} for the pid file: it belongs to uid ${NOBODY}$`),
      hint,
    );
    await refuses(
      t,
      ['--listen', `unix:${sock}`, '--control', join(theirs, 'c.sock'), '--', 'true'],
      1,
      new RegExp(`^refusing ${theirs} for the control socket: it belongs to uid ${NOBODY}$`),
      hint,
      { logged: true },
    );
    // A unix listener there: the app could swap the directory, and baton bind, or at its stop unlink, elsewhere.
    const listener = join(theirs, 'l.sock');
    await refuses(
      t,
      ['--listen', `unix:${listener}`, '--', 'true'],
      1,
      new RegExp(`^refusing ${theirs} for the listener unix:${listener}: it belongs to uid ${NOBODY}$`),
      hint,
      { logged: true },
    );
    t.false(existsSync(listener), 'nothing bound there');
  },
);

test('--control naming a file that is not a socket is refused, and the file is left alone (L6)', async (t) => {
  const dir = scratch();
  const target = victim(dir);
  const link = join(dir, 'c.sock');
  symlinkSync(target, link);
  const regular = join(dir, 'notes.txt');
  writeFileSync(regular, 'keep me\n');
  for (const control of [link, regular]) {
    await refuses(
      t,
      ['--listen', '127.0.0.1:0', '--control', control, '--', 'true'],
      1,
      new RegExp(`^${control} exists and is not a socket$`),
      /^remove it, or choose another --control path$/,
      { logged: true },
    );
  }
  t.is(statSync(target).mode & 0o777, 0o644, 'not chmodded');
  t.is(readFileSync(regular, 'utf8'), 'keep me\n', 'not deleted');
});

test('a --control path longer than sun_path is a usage error before anything opens (F9)', async (t) => {
  const dir = join(scratch(), 'd'.repeat(120));
  mkdirSync(dir);
  await refuses(
    t,
    ['--listen', '127.0.0.1:0', '--control', join(dir, 'c.sock'), '--', 'true'],
    2,
    /^control socket path too long \(max 107 bytes\)/,
    /^give a shorter --control/,
  );
  t.deepEqual(readdirSync(dir), []);
});

test('baton steer clean refuses a --name that is a path (M8)', async (t) => {
  const dir = scratch();
  const precious = join(dir, 'victimdir');
  mkdirSync(precious);
  writeFileSync(join(precious, 'data'), 'x');
  for (const name of [`../../../../..${precious}`, '.', '..']) {
    await refuses(
      t,
      ['steer', 'clean', '--name', name, '--state-dir', join(dir, 'state')],
      2,
      /^bad --name/,
      /^a name is 1-64 letters/,
    );
  }
  t.true(existsSync(join(precious, 'data')));
});

needs('bpf').serial(
  "a clean stop removes only the state file from --state-dir, never the directory's other files (M8)",
  async (t) => {
    const w = new SteerWorld();
    try {
      writeFileSync(join(w.stateDir, 'other-app-data.txt'), 'keep me\n');
      const b = w.baton(['--steer', '127.0.0.1:80', '--handover', 'port', '--', 'node', fixture]);
      await b.event('active', 1);
      t.true(existsSync(join(w.stateDir, 'state.json')));
      t.is((await b.stop()).code, 0);
      t.false(existsSync(join(w.stateDir, 'state.json')));
      t.is(readFileSync(join(w.stateDir, 'other-app-data.txt'), 'utf8'), 'keep me\n');
      t.false(w.pinned(), 'the pins are gone');
    } finally {
      await w.close();
    }
  },
);

// M1: a generation sending many distinct KEY= fields grew an unbounded map until baton died of OOM. L5: its
// STATUS went into baton's log with terminal escapes and carriage returns as they were.
// Serial: it blocks the event loop (thousands of synchronous sends), which would starve other tests' timers.
test.serial(
  'the notify channel keeps only the fields baton reads, bounded in size, without control characters',
  async (t) => {
    const channel = new NotifySocket(mkdtempSync(join(tmpdir(), 'baton-notify-')), 1, 0);
    t.teardown(() => channel.close());
    // Batches below the kernel's datagram queue (net.unix.max_dgram_qlen: 10 here), each read by said().
    for (let batch = 0; batch < 625; batch++) {
      for (let i = 0; i < 8; i++) sendNotify(channel.path, `KEY${batch * 8 + i}=${'x'.repeat(100)}`);
      channel.said();
    }
    sendNotify(channel.path, `STATUS=listening\r[fake] \u001b[2J\u009b${'y'.repeat(2000)}\nERRNO=98\nREADY=1`);
    await channel.ready();
    t.deepEqual([...channel.fields.keys()].sort(), ['ERRNO', 'READY', 'STATUS']);
    const status = channel.fields.get('STATUS')!;
    t.is(status.length, 1024);
    t.true(status.startsWith('listening?[fake] ?[2J?yyy'), status.slice(0, 30));
    t.is(channel.said(), `${status}, errno 98`);
  },
);

// M9: a root baton runs code it loads later (the self-upgrade's program, bpf/steer.o) from its package: a tree the
// application's user may write (node_modules/.bin/baton of the app) lets that user run code as root.
// Serial: the synchronous copy of the package would starve other tests' timers.
needs('root').serial('a root baton run from a package another user may change says so at start', async (t) => {
  const pkg = join(scratch(), 'app');
  mkdirSync(pkg);
  for (const part of ['dist', 'bpf', 'package.json']) cpSync(join(root, part), join(pkg, part), { recursive: true });
  symlinkSync(join(root, 'node_modules'), join(pkg, 'node_modules'));
  chownSync(pkg, NOBODY, NOBODY);
  const baton = new Baton(
    ['--listen', '127.0.0.1:0', '--', 'node', fixture],
    {},
    [],
    join(pkg, 'dist/supervisor/cli.js'),
  );
  try {
    const warning = await baton.event('warning');
    t.regex(warning.message!, new RegExp(`^baton's code is in ${pkg}: it belongs to uid ${NOBODY}: `));
    t.regex(warning.message!, /install baton root-owned outside the application/);
    await baton.event('active', 1);
  } finally {
    await baton.stop();
  }
});

/** The generation process `pid`'s NOTIFY_SOCKET: its notify socket, in baton's runtime directory. */
function notifySocketOf(pid: number): string {
  const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
  return env.find((e) => e.startsWith('NOTIFY_SOCKET='))!.slice('NOTIFY_SOCKET='.length);
}

/** Control characters but the newline, which ends a line. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
const CONTROLS = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

// M4: the client believed whatever answered at the path. Uid 1234 replaced root baton's socket in a directory it
// could write and answered `reload --wait` with "generation 42 is active", exit 0; `stop` with "baton is stopping".
needs('setpriv')(
  'baton reload|stop refuse a control socket another user serves, and send it nothing (M4)',
  async (t) => {
    const dir = scratch();
    const shared = join(dir, 'shared');
    mkdirSync(shared);
    chmodSync(shared, 0o1777);
    const path = join(shared, 'c.sock');
    const heard = join(shared, 'heard');
    const impostor =
      `const net = require('net'), fs = require('fs');` +
      `net.createServer((s) => { s.on('error', () => {});` +
      `s.on('data', (d) => fs.appendFileSync(${JSON.stringify(heard)}, d));` +
      `s.end(JSON.stringify({ ok: true, result: { generation: 42, ms: 1 } }) + '\\n'); })` +
      `.listen(${JSON.stringify(path)}, () => console.log('up'));`;
    const server = spawn(asNobody[0]!, [...asNobody.slice(1), process.execPath, '-e', impostor]);
    t.teardown(() => server.kill('SIGKILL'));
    await new Promise((resolve) => server.stdout.once('data', resolve));
    for (const args of [['reload', '--wait'], ['stop']]) {
      const r = spawnSync(process.execPath, [cli, ...args, '--control', path], { encoding: 'utf8' });
      t.is(r.status, 1, r.stdout);
      t.is(r.stdout, '');
      const [error, hint] = r.stderr.split('\n');
      t.regex(
        error!,
        new RegExp(`^error: ${path} is served by pid ${server.pid} of uid ${NOBODY}, neither root nor you`),
      );
      t.regex(
        hint!,
        new RegExp(`^hint: if it is uid ${NOBODY}'s baton, ask as that user; else someone put a socket in ${shared}: `),
      );
    }
    t.false(existsSync(heard), 'the impostor got no request');
  },
);

// M4: root took $XDG_RUNTIME_DIR as it found it (after `su`, the invoking user's): the run record, and default
// control sockets, went into a directory that user could rename away and replace.
needs('root')(
  "root ignores an $XDG_RUNTIME_DIR it does not own; nothing is created under another's (M4)",
  async (t) => {
    const xdg = join(scratch(), 'xdg');
    mkdirSync(xdg, { mode: 0o700 });
    chownSync(xdg, NOBODY, NOBODY);
    const port = await freePort();
    const b = new Baton(['--listen', `127.0.0.1:${port}`, '--', 'node', fixture], { XDG_RUNTIME_DIR: xdg });
    try {
      await b.event('active', 1);
      t.deepEqual(readdirSync(xdg), [], "no run record under the other user's runtime dir");
      const records = readdirSync('/run/baton').filter((f) => /^listen-[0-9a-f]{16}\.json$/.test(f));
      const ours = records.filter((f) => readFileSync(join('/run/baton', f), 'utf8').includes(`"pid":${b.pid},`));
      t.is(ours.length, 1, 'the run record is in /run/baton');
    } finally {
      await b.stop();
    }
  },
);

// M4/H1: only the directory itself was checked; one above it that another user owns lets them rename it away.
needs('root')('a control directory under one another user owns is refused (M4)', async (t) => {
  const theirs = join(scratch(), 'app');
  mkdirSync(theirs);
  chownSync(theirs, NOBODY, NOBODY);
  const ours = join(theirs, 'run');
  mkdirSync(ours, { mode: 0o700 });
  await refuses(
    t,
    ['--listen', '127.0.0.1:0', '--control', join(ours, 'c.sock'), '--', 'true'],
    1,
    new RegExp(`^refusing ${ours} for the control socket: its parent ${theirs} belongs to uid ${NOBODY}$`),
    /^use a directory that only root or uid 0 can write/,
    { logged: true },
  );
  t.deepEqual(readdirSync(ours), []);
});

// L1: after a tmp cleaner removed baton's empty runtime dir, uid 1234 made one at its name, mode 0777, and
// baton used it for the next generation's notify socket (mkdir -p): the attacker could swap or pre-bind it.
needs('setpriv')(
  'a runtime directory another user re-made at its name is refused; the old generation serves on (L1)',
  async (t) => {
    const port = await freePort();
    const b = new Baton(['--listen', `127.0.0.1:${port}`, '--ready', 'notify', '--', 'node', fixture]);
    try {
      const one = await b.event('active', 1);
      const dir = dirname(notifySocketOf(one.pid));
      rmSync(dir, { recursive: true }); // the tmp cleaner
      const plant = spawnSync(asNobody[0]!, [...asNobody.slice(1), 'sh', '-c', `mkdir ${dir} && chmod 777 ${dir}`]);
      t.is(plant.status, 0, String(plant.stderr));
      t.teardown(() => rmSync(dir, { recursive: true, force: true }));
      b.signal('SIGHUP');
      const failed = await b.waitFor((e) => e.generation === 2 && ['failed', 'active'].includes(e.event));
      t.is(failed.event, 'failed');
      t.is(failed.message, `refusing ${dir} for the runtime directory: it belongs to uid ${NOBODY}`);
      t.deepEqual(await servedBy(port, 1), [], 'generation 1 still serves');
      t.deepEqual(readdirSync(dir), [], 'baton made nothing in it');
      t.is((await b.stop()).code, 0);
      t.true(existsSync(dir), "baton's stop leaves the other user's directory alone");
    } finally {
      await b.stop();
    }
  },
);

// L2: the notify socket's mode came from baton's umask: under umask 000 any user could send READY=1 to a --user
// generation's socket, and baton took a `sleep` for ready and active.
needs('setpriv', 'python3')(
  'under umask 000 another user cannot send READY=1 to a --user generation (L2)',
  async (t) => {
    const user = spawnSync('id', ['-u', 'batontest'], { encoding: 'utf8' });
    if (user.status !== 0) return t.pass('no user batontest here');
    const uid = Number(user.stdout);
    const b = new Baton(
      [
        '--listen',
        '127.0.0.1:0',
        '--user',
        'batontest',
        '--handover',
        'inherit',
        '--ready',
        'notify',
        '--',
        'sleep',
        '60',
      ],
      {},
      ['sh', '-c', 'umask 000; exec "$@"', 'sh'],
    );
    try {
      const spawned = await b.event('spawn', 1);
      const socket = notifySocketOf(spawned.pid);
      const send =
        'import socket,sys; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"READY=1", sys.argv[1])';
      const r = spawnSync(asNobody[0]!, [...asNobody.slice(1), '/usr/bin/python3', '-c', send, socket], {
        encoding: 'utf8',
      });
      t.not(r.status, 0);
      t.regex(r.stderr, /PermissionError/);
      await new Promise((resolve) => setTimeout(resolve, 500));
      const status = await request(b.control, { command: 'status' }, 5_000);
      t.deepEqual(
        (status.status as Status).generations.map((g) => [g.number, g.state]),
        [[1, 'starting']],
        'not ready',
      );
      const st = statSync(socket);
      t.is(st.mode & 0o777, 0o600);
      t.is(st.uid, uid);
    } finally {
      await b.stop();
    }
  },
);

test('receiveAll takes at most the datagrams asked for (a notify poll asks 64); the rest wait for the next', (t) => {
  const path = join(mkdtempSync(join(tmpdir(), 'baton-notify-')), 'n.sock');
  const fd = createNotifySocket(path);
  t.teardown(() => closeFd(fd));
  // Below the kernel's datagram queue (net.unix.max_dgram_qlen: 10 here): a send beyond it would wait.
  for (let i = 0; i < 8; i++) sendNotify(path, `STATUS=${i}`);
  t.deepEqual(receiveAll(fd, 3), ['STATUS=0', 'STATUS=1', 'STATUS=2']);
  t.deepEqual(receiveAll(fd), ['STATUS=3', 'STATUS=4', 'STATUS=5', 'STATUS=6', 'STATUS=7']);
});

// L5: --check output (and a generation's text) reached the text log, `baton status` and the CLI's error raw:
// `\x1b[2J` cleared the operator's screen, `\r` let a line pretend to be another.
test('control characters from a failed --check reach no log line, status or error raw (L5)', async (t) => {
  const check = String.raw`printf 'bad\033[2J\rforged\302\233x\n'; exit 1`;
  const b = new Baton(['--log-format', 'text', '--listen', '127.0.0.1:0', '--check', check, '--', 'node', fixture]);
  try {
    await until('active', () => (/\] active /.test(b.stderr) ? true : undefined));
    const reload = spawnSync(process.execPath, [cli, 'reload', '--wait', '--control', b.control], { encoding: 'utf8' });
    t.is(reload.status, 1);
    const status = spawnSync(process.execPath, [cli, 'status', '--control', b.control], { encoding: 'utf8' });
    const escaped = String.raw`bad\x1b[2J\x0dforged\x9bx`;
    for (const [what, text] of [
      ['reload --wait', reload.stderr],
      ['status', status.stdout],
      ['log', await until('the log line', () => b.stderr.split('\n').find((l) => l.includes('] preflight-failed ')))],
    ] as const) {
      t.true(text?.includes(escaped), `${what}: ${text}`);
      t.false(CONTROLS.test(text ?? ''), `${what} has raw control characters`);
    }
  } finally {
    await b.stop();
  }
});
