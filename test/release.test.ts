// Deploys by release directory (issue 10): `current` is a link to the live release, baton is started from
// it, a deploy re-points it and reloads. Each upgrade resolves the path again; a crash restart stays in
// the release that serves.
import { mkdirSync, mkdtempSync, readlinkSync, realpathSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import test from 'ava';
import { Baton, ctl, fixture, statusOf } from './helpers/baton.js';
import { refuses } from './helpers/leftovers.js';
import { gaps, hammer, servedFrom } from './helpers/load.js';
import { exclusive } from './helpers/lock.js';
import { envVar, sleep } from './helpers/procs.js';

/** A deploy directory with releases r1..r3 (each a server.mjs) and `current` pointing at r1. */
function deployDir(): { current: string; release: (name: string) => string } {
  const base = mkdtempSync(join(tmpdir(), 'baton-deploy-'));
  for (const r of ['r1', 'r2', 'r3']) {
    mkdirSync(join(base, r));
    writeFileSync(join(base, r, 'server.mjs'), `import ${JSON.stringify(fixture)};\n`);
  }
  symlinkSync('r1', join(base, 'current'));
  return { current: join(base, 'current'), release: (name) => realpathSync(join(base, name)) };
}

/** Re-points the link at once (a new link renamed over it), as `ln -sfn` does in two steps. */
function point(current: string, to: string): void {
  symlinkSync(to, `${current}.new`);
  renameSync(`${current}.new`, current);
}

const cwdOf = (pid: number) => readlinkSync(`/proc/${pid}/cwd`);

test.serial('started from a release link: each upgrade runs the release the link names then; under load', async (t) => {
  const { current, release } = deployDir();
  const lock = await exclusive();
  // `cd` in a shell keeps the logical path in $PWD: baton is started from `current`, as a unit's WorkingDirectory=.
  const fromCurrent = ['sh', '-c', 'cd "$0" && exec "$@"', current];
  const b = new Baton(['--listen', '127.0.0.1:0', '--drain', '200ms', '--', 'node', 'server.mjs'], {}, fromCurrent);
  let load: ReturnType<typeof hammer> | undefined;
  try {
    const first = await b.event('active', 1);
    t.is(cwdOf(first.pid), release('r1'));
    load = hammer({ port: await b.port(), keepAlive: false, concurrency: 2, maxMs: 30_000 });
    const began = performance.now();
    point(current, 'r2');
    await b.upgradeTo(2);
    const second = await b.event('spawn', 2);
    t.is(cwdOf(second.pid), release('r2'), 'the new generation runs the new release');
    t.is(second.cwd, release('r2'), 'the spawn event names it');
    t.like(
      (await statusOf(b)).generations.find((g) => g.number === 2),
      { dir: release('r2') },
    );
    // A crash restart (after the canary window) stays in the release that serves, whatever the link says meanwhile.
    await b.waitFor((e) => e.event === 'stop' && e.generation === 1);
    point(current, 'r3');
    process.kill(second.pid, 'SIGKILL');
    const restarted = await b.event('spawn', 3);
    t.is(cwdOf(restarted.pid), release('r2'));
    await b.event('active', 3);
    const settled = performance.now() - began;
    await sleep(600);
    const r = await load.stop();
    t.true(r.failed <= 4, `only requests in flight on the killed generation fail: ${JSON.stringify(r.failures)}`);
    t.deepEqual(servedFrom(r, settled + 300), [3]);
  } finally {
    await load?.stop();
    lock();
    await b.stop();
  }
});

test.serial('a release link that leads nowhere refuses the upgrade; the active generation serves on', async (t) => {
  const { current, release } = deployDir();
  const lock = await exclusive();
  const args = ['--listen', '127.0.0.1:0', '--cwd', current, '--drain', '200ms', '--', 'node', 'server.mjs'];
  const b = new Baton(args);
  let load: ReturnType<typeof hammer> | undefined;
  try {
    const first = await b.event('active', 1);
    t.is(cwdOf(first.pid), release('r1'));
    load = hammer({ port: await b.port(), keepAlive: false, concurrency: 2, maxMs: 30_000 });
    point(current, 'r4');
    const r = await ctl(b, 'reload', '--wait');
    t.is(r.code, 1);
    t.regex(
      r.stderr,
      new RegExp(`^error: upgrade failed: the working directory ${current} does not lead to a directory`, 'm'),
    );
    t.regex(r.stderr, /^hint: point it at a release directory \(ln -sfn RELEASE .*\); generation 1 still serves/m);
    t.false(
      b.events.some((e) => e.event === 'spawn' && e.generation === 2),
      'nothing was started',
    );
    point(current, 'r2');
    await b.upgradeTo(2);
    t.is(cwdOf((await b.event('active', 2)).pid), release('r2'));
    t.deepEqual(gaps(await load.stop()), []);
  } finally {
    await load?.stop();
    lock();
    await b.stop();
  }
});

test('--cwd that leads to no directory is refused at start', async (t) => {
  const args = ['--listen', '127.0.0.1:0', '--cwd', '/nonexistent/current', '--', 'node', fixture];
  await refuses(
    t,
    args,
    2,
    /^the working directory \/nonexistent\/current does not lead to a directory$/,
    /^point it at a release directory \(ln -sfn RELEASE \/nonexistent\/current\)$/,
  );
});

test.serial(
  '--env-file is read again at each upgrade; a malformed one refuses it and the old generation serves on',
  async (t) => {
    const { current, release } = deployDir();
    const shared = join(dirname(current), 'shared.env');
    writeFileSync(shared, '# settings\nGREETING=one\n');
    writeFileSync(join(release('r2'), 'local.env'), 'LOCAL="from r2"\n');
    const lock = await exclusive();
    const files = ['--env-file', shared, '--env-file=-local.env'];
    const args = [
      '--listen',
      '127.0.0.1:0',
      '--cwd',
      current,
      ...files,
      '--drain',
      '200ms',
      '--',
      'node',
      'server.mjs',
    ];
    const b = new Baton(args);
    let load: ReturnType<typeof hammer> | undefined;
    try {
      const first = await b.event('active', 1);
      t.deepEqual(
        [envVar(first.pid, 'GREETING'), envVar(first.pid, 'LOCAL')],
        ['one', undefined],
        'r1 has no local.env',
      );
      load = hammer({ port: await b.port(), keepAlive: false, concurrency: 2, maxMs: 30_000 });
      writeFileSync(shared, "GREETING='two'\n");
      point(current, 'r2');
      await b.upgradeTo(2);
      const second = await b.event('active', 2);
      t.deepEqual([envVar(second.pid, 'GREETING'), envVar(second.pid, 'LOCAL')], ['two', 'from r2']);
      writeFileSync(shared, 'GREETING=three\nBAD="never closed\n');
      const r = await ctl(b, 'reload', '--wait');
      t.is(r.code, 1);
      t.regex(
        r.stderr,
        new RegExp(`^error: upgrade failed: --env-file ${shared}:2: the double quote is never closed$`, 'm'),
      );
      t.regex(r.stderr, /^hint: write KEY=VALUE lines .*; generation 2 still serves/m);
      t.false(
        b.events.some((e) => e.event === 'spawn' && e.generation === 3),
        'nothing was started',
      );
      t.deepEqual(gaps(await load.stop()), []);
    } finally {
      await load?.stop();
      lock();
      await b.stop();
    }
  },
);

test('--env-file: a missing file is refused at start (one marked optional is not: the test above)', async (t) => {
  const missing = join(tmpdir(), 'baton-no-such.env');
  await refuses(
    t,
    ['--listen', '127.0.0.1:0', '--env-file', missing, '--', 'node', fixture],
    2,
    new RegExp(`^--env-file ${missing}: cannot be read \\(ENOENT\\)$`),
    /^write KEY=VALUE lines \(systemd EnvironmentFile= syntax\); an optional file: --env-file=-PATH$/,
  );
});
