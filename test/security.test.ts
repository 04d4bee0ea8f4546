import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { NotifySocket } from '../supervisor/notify-socket.js';
import { sendNotify } from '../supervisor/sys/socket.js';
import { Baton, fixture, root } from './helpers/baton.js';
import { refuses } from './helpers/leftovers.js';
import { needs } from './helpers/needs.js';
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
  // The attacker (nobody) plants `baton.pid.<pid>.tmp -> victim` for the next 300 pids: the old temp name.
  const next = Number(readFileSync('/proc/sys/kernel/ns_last_pid', 'utf8')) + 1;
  const plant = `for i in $(seq ${next} ${next + 300}); do ln -s ${target} ${pidFile}.$i.tmp; done`;
  t.is(spawnSync(asNobody[0]!, [...asNobody.slice(1), 'sh', '-c', plant]).status, 0);
  const b = new Baton(['--listen', '127.0.0.1:0', '--pid-file', pidFile, '--', 'node', fixture]);
  try {
    await b.event('active', 1);
    t.is(readFileSync(pidFile, 'utf8'), `${b.pid}\n`);
    t.is(readFileSync(target, 'utf8'), 'important root config\n', 'the victim is untouched');
  } finally {
    await b.stop();
  }
});

needs('root')('a pid-file or control directory another user owns is refused; nothing is left (H1, M4)', async (t) => {
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
});

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
test('the notify channel keeps only the fields baton reads, bounded in size, without control characters', async (t) => {
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
});

// M9: a root baton runs code it loads later (the self-upgrade's program, bpf/steer.o) from its package: a tree the
// application's user may write (node_modules/.bin/baton of the app) lets that user run code as root.
needs('root')('a root baton run from a package another user may change says so at start', async (t) => {
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
