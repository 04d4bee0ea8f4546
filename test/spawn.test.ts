// baton's own spawn (posix_spawn through libc): what a generation's process starts with, read from /proc.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import test from 'ava';
import { spawnPending } from '../supervisor/children.js';
import type { ExitStatus } from '../supervisor/exit-status.js';
import { watchExit } from '../supervisor/exits.js';
import { withUmask } from '../supervisor/files.js';
import { Generation } from '../supervisor/generation.js';
import type { Fields } from '../supervisor/log.js';
import type { Release } from '../supervisor/release.js';
import { closeOnExecAll } from '../supervisor/sys/fd.js';
import { type SpawnOptions, spawnProcess, spawnProcessAsync } from '../supervisor/sys/spawn.js';

// As baton does at its start: what this test's own launcher left open reaches no child.
closeOnExecAll();

const exited = (pid: number) => new Promise<ExitStatus>((resolve) => watchExit(pid, resolve));
const ownFds = () => readdirSync('/proc/self/fd').length;
// The keeper's spawn (baton's thread paused until the child's exec) and a generation's (the clone and exec on a
// worker thread): the child is the same, and each returns once the child's exec is done.
type Spawn = (file: string, argv: string[], options: SpawnOptions) => Promise<number>;
const SPAWNS: Array<[string, Spawn]> = [
  ["on baton's thread", async (...a) => spawnProcess(...a)],
  ["off baton's thread", spawnProcessAsync],
];
const statusField = (pid: number, name: string) =>
  readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${name}:\\s*(\\S+)`, 'm'))?.[1];

for (const [how, spawn] of SPAWNS) {
  test.serial(
    `${how}: the child has its stdio, the fds it is handed (crossed), default signals, a session, its cwd and env`,
    async (t) => {
      const before = ownFds();
      // Child fds 3 and 4 are baton's 2 and 1: each source lies below the child's fd count, and must not be
      // overwritten.
      const pid = await spawn('/bin/sleep', ['sleep', '30'], {
        cwd: tmpdir(),
        env: ['A=1', 'B=two words'],
        stdio: ['ignore', 'inherit', 'inherit', 2, 1],
      });
      try {
        t.true(pid > 0);
        t.is(ownFds(), before, 'the fds moved up for the dup2 are closed again');
        const fd = (n: number) => readlinkSync(`/proc/${pid}/fd/${n}`);
        // The pipe that tells the exec is done is closed with the other close-on-exec fds, in order, early in the
        // exec: an fd numbered above it may still be there a moment, and the new image's environment is laid out
        // after them (/proc/PID/environ reads empty until then; CI at 0cc3f4a saw it).
        const fds = () => readdirSync(`/proc/${pid}/fd`).sort();
        const environ = () => readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
        for (let i = 0; i < 100 && (fds().length > 5 || environ().length === 1); i++) {
          await new Promise((r) => setTimeout(r, 10));
        }
        t.deepEqual(fds(), ['0', '1', '2', '3', '4']);
        t.is(fd(0), '/dev/null');
        t.is(fd(1), readlinkSync('/proc/self/fd/1'));
        t.is(fd(3), readlinkSync('/proc/self/fd/2'));
        t.is(fd(4), readlinkSync('/proc/self/fd/1'));
        // Node ignores SIGPIPE: the child must not.
        t.is(statusField(pid, 'SigIgn'), '0000000000000000');
        t.is(statusField(pid, 'SigBlk'), '0000000000000000');
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
        t.deepEqual([stat[2], stat[3]].map(Number), [pid, pid], 'its own process group and session');
        t.is(readlinkSync(`/proc/${pid}/cwd`), tmpdir());
        t.deepEqual(environ(), ['A=1', 'B=two words', '']);
      } finally {
        process.kill(pid, 'SIGTERM');
      }
      t.deepEqual(await exited(pid), { code: null, signal: 'SIGTERM' });
    },
  );

  test.serial(
    `${how}: a file that cannot be executed is the call error, with the errno; nothing is left open`,
    async (t) => {
      const before = ownFds();
      const err = await t.throwsAsync(() =>
        spawn('/nonexistent/server', ['server'], { cwd: '/', env: [], stdio: ['ignore', 1, 2, 0] }),
      );
      t.is(err?.message, 'spawn /nonexistent/server: No such file or directory (ENOENT)');
      t.is((err as { code?: string }).code, 'ENOENT');
      t.is(ownFds(), before);
      await t.throwsAsync(() => spawn('/bin/true', ['true', 'a\0b'], { cwd: '/', env: [], stdio: [] }), {
        message: /NUL byte/,
      });
      t.is(ownFds(), before);
    },
  );
}

test('a generation whose command is gone exits 127 (as a shell says not found) after a spawn-error line', async (t) => {
  const lines: Array<[string, Fields]> = [];
  const release = { dir: '/', env: {} } as unknown as Release;
  const plan = { file: 'no-such-server-baton', args: [], env: { PATH: '/usr/bin' }, stdio: [], release };
  const gen = await Generation.spawn(3, plan, { event: (event, fields = {}) => lines.push([event, fields]) });
  t.is(gen.pid, 0);
  t.deepEqual(await gen.exited, { code: 127, signal: null });
  t.deepEqual(lines[0], [
    'spawn-error',
    { generation: 3, message: 'spawn no-such-server-baton: No such file or directory (ENOENT)' },
  ]);
});

test('the command is looked up in the PATH of the env it runs with, as execvp would', async (t) => {
  const release = { dir: '/', env: {} } as unknown as Release;
  const plan = { file: 'true', args: [], env: { PATH: '/nonexistent:/bin' }, stdio: [], release };
  const gen = await Generation.spawn(4, plan, { event: () => {} });
  t.true(gen.pid > 0);
  t.deepEqual(await gen.exited, { code: 0, signal: null });
});

test.serial("while a generation's spawn is under way on a worker thread, baton's umask may not change", async (t) => {
  const release = { dir: '/', env: {} } as unknown as Release;
  const plan = { file: 'true', args: [], env: { PATH: '/bin:/usr/bin' }, stdio: [], release };
  const starting = Generation.spawn(5, plan, { event: () => {} });
  t.true(spawnPending(), 'the reaper leaves every zombie alone meanwhile: it may be this child');
  t.throws(() => withUmask(0o177, () => undefined), { message: /spawn is under way/ });
  const gen = await starting;
  t.false(spawnPending());
  t.is(
    withUmask(0o177, () => 1),
    1,
  );
  t.deepEqual(await gen.exited, { code: 0, signal: null });
});
