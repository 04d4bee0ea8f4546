import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Baton, cli, fixture, root } from './helpers/baton.js';

const tmp = (name: string) => join(tmpdir(), `baton-cli-${process.pid}-${name}`);

/** Runs baton to completion; asserts one error line, one hint line, the exit code, and (unless spawns) no spawn. */
function refuses(t: import('ava').ExecutionContext, args: string[], code: number, error: RegExp, hint: RegExp, prefix: string[] = [], spawns = false) {
  const r = spawnSync(prefix[0] ?? process.execPath, [...prefix.slice(1), ...(prefix.length ? [process.execPath] : []), cli, ...args], { cwd: root, encoding: 'utf8', timeout: 20_000 });
  const lines = r.stderr.split('\n').filter(Boolean);
  t.is(r.status, code, r.stderr);
  t.is(lines.filter((l) => l.startsWith('error: ')).length, 1, r.stderr);
  t.is(lines.filter((l) => l.startsWith('hint: ')).length, 1, r.stderr);
  t.regex(lines.find((l) => l.startsWith('error: '))!, error);
  t.regex(lines.find((l) => l.startsWith('hint: '))!, hint);
  if (!spawns) t.false(r.stderr.includes('"spawn"') || r.stderr.includes('] spawn'), 'nothing was started');
  return r;
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer().once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

test('no command', (t) => {
  refuses(t, ['--listen', '127.0.0.1:0'], 2, /no command to run/, /after --/);
});

test('no --listen', (t) => {
  refuses(t, ['--', 'true'], 2, /Missing required argument: listen/, /--listen ADDRESS/);
});

test('unknown option', (t) => {
  refuses(t, ['--listen', '127.0.0.1:0', '--frobnicate', '--', 'true'], 2, /Unknown argument: frobnicate/, /--help/);
});

for (const bad of ['8080', 'localhost:8080', '127.0.0.1:99999', '[::1:80', 'unix:relative.sock', '1.2.3.4:']) {
  test(`malformed --listen ${bad}`, (t) => {
    refuses(t, ['--listen', bad, '--', 'true'], 2, /--listen|port/, /HOST:PORT|port is a number|\/path/);
  });
}

test('bad signal name', (t) => {
  refuses(t, ['--listen', '127.0.0.1:0', '--stop-signal', 'SIGFOO', '--', 'true'], 2, /unknown signal for --stop-signal: "SIGFOO"/, /SIGTERM/);
});

test('bad duration', (t) => {
  refuses(t, ['--listen', '127.0.0.1:0', '--drain', 'soon', '--', 'true'], 2, /bad duration for --drain/, /5s/);
});

test('missing executable: nothing is bound', (t) => {
  const sock = tmp('missing.sock');
  refuses(t, ['--listen', `unix:${sock}`, '--', 'no-such-command-baton'], 1, /command not found: no-such-command-baton/, /full path/);
  t.false(existsSync(sock));
});

test('address in use: the listeners opened before it are closed again', async (t) => {
  const sock = tmp('inuse.sock');
  const busy = net.createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
  const port = (busy.address() as net.AddressInfo).port;
  try {
    refuses(t, ['--listen', `unix:${sock}`, '--listen', `127.0.0.1:${port}`, '--', 'node', fixture], 1, /bind: Address already in use \(EADDRINUSE\)/, /another process listens/);
    t.false(existsSync(sock));
  } finally {
    busy.close();
  }
});

test('privileged port without the right (as nobody)', async (t) => {
  const setpriv = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all'];
  refuses(t, ['--listen', '127.0.0.1:81', '--', 'true'], 1, /bind: Permission denied \(EACCES\)/, /CAP_NET_BIND_SERVICE/, setpriv);
  t.true(await portIsFree(81));
});

test('unwritable pid file: listener closed, nothing started', async (t) => {
  const sock = tmp('pidfile.sock');
  refuses(t, ['--listen', `unix:${sock}`, '--pid-file', '/proc/baton.pid', '--', 'node', fixture], 1, /cannot write pid file \/proc\/baton\.pid/, /writable/);
  t.false(existsSync(sock));
});

test('pid file of a running baton is refused with its pid', (t) => {
  const pidFile = tmp('running.pid');
  writeFileSync(pidFile, `${process.pid}\n`);
  refuses(t, ['--listen', '127.0.0.1:0', '--pid-file', pidFile, '--', 'true'], 1, new RegExp(`running process \\(pid ${process.pid}\\)`), /kill/);
  t.true(existsSync(pidFile), 'another process’s pid file is left alone');
});

test('a stale pid file is replaced, and removed on stop', async (t) => {
  const pidFile = tmp('stale.pid');
  writeFileSync(pidFile, '999999\n');
  const baton = new Baton(['--listen', '127.0.0.1:0', '--pid-file', pidFile, '--', 'node', fixture]);
  await baton.event('active', 1);
  t.regex(String(baton.events.find((e) => e.event === 'stale-pid-file')?.message), /dead pid 999999/);
  t.is(readFileSync(pidFile, 'utf8'), `${baton.pid}\n`);
  await baton.stop();
  t.false(existsSync(pidFile));
});

test('generation 1 that never starts: exit 1, no child, no pid file, no socket', (t) => {
  const sock = tmp('gen1-listener.sock');
  const pidFile = tmp('gen1.pid');
  refuses(t, ['--listen', `unix:${sock}`, '--pid-file', pidFile, '--log-format', 'json', '--', 'node', fixture, 'exit-before-ready'], 1, /generation 1 failed: exited with code 3 before ready/, /by hand/, [], true);
  t.false(existsSync(sock));
  t.false(existsSync(pidFile));
});

test('--help lists every option and exits 0', (t) => {
  const out = execFileSync(process.execPath, [cli, '--help'], { encoding: 'utf8' });
  for (const o of ['--listen', '--backlog', '--handover', '--ready', '--ready-timeout', '--drain', '--stop-signal', '--kill-timeout', '--max-draining', '--pid-file', '--log-format', '--user', '--group']) t.true(out.includes(o), o);
});

test('text log lines carry time, generation, pid and event', async (t) => {
  const child = (await import('node:child_process')).spawn(process.execPath, [cli, '--listen', '127.0.0.1:0', '--', 'node', fixture], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  while (!/\] active/.test(stderr)) await new Promise((r) => setTimeout(r, 50));
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  t.regex(stderr, /^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z baton pid=\d+\] listening listener=127\.0\.0\.1:\d+ name=listener0 fd=\d+$/m);
  t.regex(stderr, /^\[\S+ gen=1 pid=\d+\] ready worker=0 grab=\d+ ready=\d+$/m);
  t.regex(stderr, /^\[\S+ gen=1 pid=\d+\] exit exited with code 0 worker=0 code=0 grab=\d+ ready=\d+ stop=\d+ exit=\d+$/m);
});

test('the command after -- is passed on as written (no number parsing)', (t) => {
  const r = spawnSync(process.execPath, [cli, '--listen', '127.0.0.1:0', '--control', tmp('argv.sock'), '--', 'node', '-e', "console.log(process.argv.slice(1).join(' '))", '0x10', '1e3', '1.50', '007'], { encoding: 'utf8', timeout: 20_000 });
  t.is(r.status, 1, 'the command exits before ready');
  t.is(r.stdout.trim(), '0x10 1e3 1.50 007');
});

test("the command's own --config is the command's", (t) => {
  const r = spawnSync(process.execPath, [cli, '--listen', '127.0.0.1:0', '--control', tmp('cfg.sock'), '--', 'sh', '-c', 'exit 5', 'sh', '--config', '/nonexistent.json'], { encoding: 'utf8', timeout: 20_000 });
  t.is(r.status, 1);
  t.notRegex(r.stderr, /cannot read --config/);
  t.regex(r.stderr, /^error: generation 1 failed: exited with code 5 before ready$/m);
});
