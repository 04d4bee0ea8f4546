import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, fixture, root } from './helpers/baton.js';
import { Netns } from './helpers/netns.js';
import { SteerWorld } from './helpers/steer.js';
import { getPinned, loadObject, pinObject } from '../supervisor/sys/bpf.js';

/** Runs baton in the world's namespace to completion; asserts the two lines and the exit code. */
function refuses(t: import('ava').ExecutionContext, w: SteerWorld, args: string[], code: number, error: RegExp, hint: RegExp, env: NodeJS.ProcessEnv = {}, prefix: string[] = []) {
  const r = spawnSync(w.ns.prefix[0]!, [...w.ns.prefix.slice(1), ...prefix, process.execPath, cli, '--name', w.name, '--state-dir', w.stateDir, ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 20_000 });
  const lines = r.stderr.split('\n').filter(Boolean);
  t.is(r.status, code, r.stderr);
  t.is(lines.filter((l) => l.startsWith('error: ')).length, 1, r.stderr);
  t.regex(lines.find((l) => l.startsWith('error: ')) ?? '', error);
  t.regex(lines.find((l) => l.startsWith('hint: ')) ?? '', hint);
  t.false(w.pinned(), 'nothing left pinned');
  return r;
}

const steerArgs = ['--steer', '127.0.0.1:80', '--listen', '127.0.0.1:0', '--', 'node', fixture];

async function inWorld(t: import('ava').ExecutionContext, body: (w: SteerWorld) => Promise<void> | void) {
  const w = new SteerWorld();
  try {
    await body(w);
  } finally {
    await w.close();
  }
}

test.serial('pins of a different program are refused', (t) =>
  inWorld(t, (w) => {
    const obj = join(mkdtempSync(join(tmpdir(), 'baton-other-')), 'other.o');
    execFileSync('clang', ['-O2', '-g', '-target', 'bpf', `-I/usr/include/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu`, '-c', `${root}test/fixtures/other-steer.c`, '-o', obj]);
    const other = loadObject(obj, 'other', []);
    mkdirSync(w.pins, { recursive: true });
    pinObject(other.prog, join(w.pins, 'prog'));
    pinObject(other.prog, join(w.pins, 'link'));
    other.close();
    const r = spawnSync(w.ns.prefix[0]!, [...w.ns.prefix.slice(1), process.execPath, cli, '--name', w.name, '--state-dir', w.stateDir, ...steerArgs], { cwd: root, encoding: 'utf8' });
    t.is(r.status, 1);
    t.regex(r.stderr, /^error: the pins at \S+ belong to a different program \(tag [0-9a-f]{16}, baton's is [0-9a-f]{16}\)$/m);
    t.regex(r.stderr, new RegExp(`^hint: remove them with baton steer clean --name ${w.name}`, 'm'));
    t.true(existsSync(join(w.pins, 'prog')), 'the other pins are left alone');
    const clean = spawnSync(process.execPath, [cli, 'steer', 'clean', '--name', w.name, '--state-dir', w.stateDir], { encoding: 'utf8' });
    t.is(clean.status, 0, clean.stderr);
    t.regex(clean.stdout, /removed the pins/);
    t.false(w.pinned());
  }));

test.serial('--keep-steering leaves the pins; baton steer clean removes them', (t) =>
  inWorld(t, async (w) => {
    const b = w.baton(['--keep-steering', ...steerArgs]);
    await b.event('active', 1);
    await b.stop();
    t.true(w.pinned());
    t.notThrows(() => getPinned(join(w.pins, 'link')));
    // The link still runs with an empty slot (baton's listener is closed): the lookup fails, even
    // where another socket is bound on the steered port; an unsteered port is the kernel's as usual.
    const echo = "for (const p of [80, 81]) require('net').createServer((c) => c.pipe(c)).listen(p, '127.0.0.1'); console.log('up')";
    const other = (await import('node:child_process')).spawn(w.ns.prefix[0]!, [...w.ns.prefix.slice(1), process.execPath, '-e', echo]);
    await new Promise((r) => other.stdout.once('data', r));
    try {
      t.deepEqual(await w.echo(['127.0.0.1:80', '127.0.0.1:81']), { '127.0.0.1:80': 'ECONNREFUSED', '127.0.0.1:81': 'ok' });
    } finally {
      other.kill();
    }
    const clean = spawnSync(process.execPath, [cli, 'steer', 'clean', '--name', w.name, '--state-dir', w.stateDir], { encoding: 'utf8' });
    t.is(clean.status, 0, clean.stderr);
    t.false(w.pinned());
  }));

test.serial('a rule over another process’s listener is refused; --force steers with a warning', (t) =>
  inWorld(t, async (w) => {
    // A listener of another process inside the namespace, on the steered address and port.
    const other = (await import('node:child_process')).spawn(w.ns.prefix[0]!, [...w.ns.prefix.slice(1), process.execPath, '-e', "require('net').createServer().listen(80, '127.0.0.1', () => console.log('up'))"]);
    await new Promise((r) => other.stdout.once('data', r));
    try {
      refuses(t, w, steerArgs, 1, /--steer would take connections from another process listening on 127\.0\.0\.1:80 \(--steer 127\.0\.0\.1:80\)/, /--force/);
      const b = w.baton(['--force', ...steerArgs]);
      await b.event('active', 1);
      t.regex(String(b.events.find((e) => e.event === 'warning')?.message), /127\.0\.0\.1:80/);
      await b.stop();
    } finally {
      other.kill();
    }
  }));

test.serial('steering errors: one error line, one hint, nothing pinned', (t) =>
  inWorld(t, (w) => {
    refuses(t, w, ['--steer', '127.0.0.1:80-70', ...steerArgs.slice(2)], 2, /bad port or range "80-70"/, /LOW-HIGH/);
    refuses(t, w, ['--steer', 'example.com:80', ...steerArgs.slice(2)], 2, /"example\.com" is not an IP address/, /ADDRESS/);
    refuses(t, w, ['--steer', '127.0.0.1/33:80', ...steerArgs.slice(2)], 2, /bad prefix length "\/33"/, /0 to 32/);
    refuses(t, w, ['--steer', '127.0.0.0/8:80', '--steer', '127.0.0.1:80,81', ...steerArgs.slice(2)], 2, /--steer 127\.0\.0\.1:80,81 overlaps --steer 127\.0\.0\.0\/8:80 on port 80/, /one rule only/);
    refuses(t, w, ['--steer', 'udp:127.0.0.1:53', ...steerArgs.slice(2)], 2, /UDP steering is not supported/, /TCP/);
    refuses(t, w, ['--handover', 'port', '--', 'true'], 2, /--handover port needs --steer/, /--steer 0\.0\.0\.0:8080/);
    refuses(t, w, steerArgs, 1, /cannot load \/nonexistent\/libbpf\.so\.1/, /install libbpf/, { BATON_LIBBPF: '/nonexistent/libbpf.so.1' });
    refuses(t, w, steerArgs, 1, /bpffs is not mounted at \/proc\/baton-bpffs and cannot be mounted/, /mount -t bpf/, { BATON_BPFFS: '/proc/baton-bpffs' });
    refuses(t, w, steerArgs, 1, /steering needs CAP_BPF and CAP_NET_ADMIN/, /run baton as root/, {}, ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all']);
  }));

test.serial('steering errors leave the listener closed', (t) =>
  inWorld(t, async (w) => {
    const port = 18000 + (process.pid % 1000);
    refuses(t, w, ['--steer', '127.0.0.1:80', '--listen', `127.0.0.1:${port}`, '--', 'node', fixture], 1, /cannot load/, /libbpf/, { BATON_LIBBPF: '/nonexistent/libbpf.so.1' });
    // the port is free again inside the namespace
    const r = spawnSync(w.ns.prefix[0]!, [...w.ns.prefix.slice(1), process.execPath, '-e', `require('net').createServer().listen(${port}, '127.0.0.1', function () { this.close() })`], { encoding: 'utf8' });
    t.is(r.status, 0, r.stderr);
  }));

test.serial('pins attached to another network namespace are refused', (t) =>
  inWorld(t, async (w) => {
    const first = w.baton(['--keep-steering', ...steerArgs]);
    await first.event('active', 1);
    await first.stop();
    const other = new Netns();
    try {
      const r = spawnSync(other.prefix[0]!, [...other.prefix.slice(1), process.execPath, cli, '--name', w.name, '--state-dir', w.stateDir, ...steerArgs], { cwd: root, encoding: 'utf8' });
      t.is(r.status, 1);
      t.regex(r.stderr, /^error: the pins at \S+ steer another network namespace \(inode \d+, this one is \d+\)$/m);
      t.true(w.pinned(), 'the pins are left alone');
    } finally {
      other.remove();
    }
  }));

test.serial('a wildcard listener of another process is shadowed too', (t) =>
  inWorld(t, async (w) => {
    const other = (await import('node:child_process')).spawn(w.ns.prefix[0]!, [...w.ns.prefix.slice(1), process.execPath, '-e', "require('net').createServer().listen(80, '0.0.0.0', () => console.log('up'))"]);
    await new Promise((r) => other.stdout.once('data', r));
    try {
      refuses(t, w, steerArgs, 1, /another process listening on 0\.0\.0\.0:80 \(--steer 127\.0\.0\.1:80\)/, /--force/);
    } finally {
      other.kill();
    }
  }));
