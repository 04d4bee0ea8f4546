// The package as users get it: `npm pack` of this tree (as built by npm test), installed into an app of another
// name and version, run from the app's node_modules/.bin. No network: baton's dependencies are copied from this
// tree's node_modules (what npm ci installed), so npm resolves nothing but the tarball.
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { alive, Baton, root } from './helpers/baton.js';
import { get } from './helpers/load.js';
import { needs } from './helpers/needs.js';
import { tail, until } from './helpers/procs.js';

const run = promisify(execFile);
const own = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { version: string; files: string[] };
const dir = mkdtempSync(join(tmpdir(), 'baton-package-'));
const app = join(dir, 'app');
const bin = join(app, 'node_modules', '.bin', 'baton');
let packed: Array<{ path: string; mode: number }> = [];

const SERVER = `import http from 'node:http';
import { serve } from 'baton/child';
await serve(http.createServer((_req, res) => res.end(\`pid=\${process.pid}\\n\`)));
`;

test.before(async () => {
  // --ignore-scripts: npm test has built dist/ already; `prepare` would rebuild it under the other tests' feet.
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: root });
  const [{ filename, files }] = JSON.parse(stdout) as Array<{ filename: string; files: typeof packed }>;
  packed = files;
  const { stdout: tree } = await run('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: root });
  for (const path of tree.trim().split('\n').slice(1)) {
    cpSync(path, join(app, relative(root, path)), { recursive: true, dereference: true });
  }
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', type: 'module' }));
  writeFileSync(join(app, 'server.mjs'), SERVER);
  const install = ['install', '--offline', '--ignore-scripts', '--no-audit', '--no-fund', join(dir, filename)];
  await run('npm', install, { cwd: app, timeout: 120_000 });
});
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

/** `npx ARGS` in the app. */
const npx = (...args: string[]) => run('npx', args, { cwd: app, encoding: 'utf8', timeout: 60_000 });

test('the tarball holds what `files` names, no tests and no benchmark results; its programs are executable', (t) => {
  const [included, excluded] = [own.files.filter((f) => !f.startsWith('!')), own.files.filter((f) => f[0] === '!')];
  const under = (path: string, f: string) => path === f || path.startsWith(`${f}/`);
  for (const { path } of packed) {
    const named = ['package.json', 'README.md', 'LICENSE'].includes(path) || included.some((f) => under(path, f));
    t.true(named && !excluded.some((f) => under(path, f.slice(1))), `${path} is outside files`);
    t.notRegex(path, /(^|\/)(test|bench|benchmarks?)(\/|\.|$)/, path);
  }
  for (const program of ['dist/supervisor/cli.js', 'dist/supervisor/sys/native/keeper-x86_64']) {
    t.is(packed.find((f) => f.path === program)!.mode & 0o111, 0o111, `${program} in the tarball`);
    t.is(statSync(join(app, 'node_modules/baton', program)).mode & 0o111, 0o111, `${program} installed`);
  }
});

test("npx baton --version in an app prints baton's version, not the app's; --help names it", async (t) => {
  t.not(own.version, '1.0.0');
  t.is((await npx('baton', '--version')).stdout.trim(), own.version);
  t.regex((await npx('baton', '--help')).stdout, new RegExp(`baton ${own.version.replace(/\./g, '\\.')}: runs`));
});

test(
  'npx baton runs the app, whose server serve()s from ' + 'baton/child; baton reload --wait; baton stop: exit 0',
  async (t) => {
    const args = ['--listen', '127.0.0.1:0', '--drain', '100ms', '--', 'node', 'server.mjs'];
    const baton = new Baton(args, {}, ['env', '-C', app, 'npx'], 'baton');
    try {
      const first = await baton.event('active', 1);
      const port = await baton.port();
      t.is(await get(port), `pid=${first.pid}\n`);
      await npx('baton', 'reload', '--wait', '--control', baton.control);
      const second = await baton.event('active', 2);
      // Generation 1 answers too until its drain is over.
      await until('generation 1 gone', () => (alive(first.pid) ? undefined : true));
      t.is(await get(port), `pid=${second.pid}\n`, 'generation 2 serves');
      await npx('baton', 'stop', '--control', baton.control);
      t.deepEqual(await baton.exited, { code: 0, signal: null }, tail(baton));
      t.false(alive(second.pid));
    } finally {
      stopAll(baton);
      await baton.exited;
    }
  },
);

// Alpine's node images: /bin/sh and env are BusyBox (whose env has no -S). The bin starts through sh.
needs('busybox')('the installed bin starts where /bin/sh and /usr/bin/env are BusyBox', async (t) => {
  const busybox = (await run('sh', ['-c', 'command -v busybox'])).stdout.trim();
  // unshare and sh exec: baton's pid is the one spawned.
  const bind = 'mount --bind "$0" /usr/bin/env && mount --bind "$0" /bin/sh && exec "$@"';
  const prefix = ['unshare', '-m', 'sh', '-c', bind, busybox];
  const baton = new Baton(['--listen', '127.0.0.1:0', '--', 'node', join(app, 'server.mjs')], {}, prefix, bin);
  try {
    const { pid } = await baton.event('active', 1);
    for (const path of ['/usr/bin/env', '/bin/sh']) {
      const ino = statSync(`/proc/${baton.pid}/root${path}`).ino;
      t.is(ino, statSync(busybox).ino, `in baton's mount namespace ${path} is BusyBox`);
    }
    t.is(await get(await baton.port()), `pid=${pid}\n`);
    t.deepEqual(await baton.stop(), { code: 0, signal: null }, tail(baton));
  } finally {
    stopAll(baton);
    await baton.exited;
  }
});

/** A failed test leaves nothing running: baton itself (npx's child) gets SIGTERM. */
function stopAll(baton: Baton): void {
  const pid = baton.events.find((e) => e.event === 'config')?.pid;
  if (pid && alive(pid)) process.kill(pid, 'SIGTERM');
  if (baton.child.exitCode === null && baton.child.signalCode === null) baton.signal('SIGTERM');
}
