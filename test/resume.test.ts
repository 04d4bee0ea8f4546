// The security review's M7 (issue 17): BATON_RESUME and the steering state file name processes to
// signal and a directory to remove. A forged one is refused, and nothing it names is signalled or removed.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { startTime } from '../supervisor/sys/proc.js';
import { Baton, cli, fixture, root } from './helpers/baton.js';
import { needs } from './helpers/needs.js';
import { sleep } from './helpers/procs.js';
import { SteerWorld } from './helpers/steer.js';

const args = ['--listen', '127.0.0.1:0', '--kill-timeout', '500', '--', 'node', fixture];

/** A directory named as baton names its runtime directory; removed after the test. */
function runtimeDir(t: ExecutionContext, prefix = 'baton-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A state as a baton writes it, adopting `generations`. */
function state(generations: Array<{ pid: number }>, runtimeDir: string) {
  return {
    listeners: [],
    runtimeDir,
    next: 2,
    failures: 0,
    crashes: [],
    workers: 1,
    pending: false,
    startedAt: Date.now(),
    history: [],
    generations: generations.map((g, i) => ({
      number: i + 1,
      worker: i,
      pid: g.pid,
      state: 'active',
      ageMs: 1000,
      own: [],
      times: {},
    })),
  };
}

/** A process of the test's, in a session of its own (pgid = pid), as a generation would be. */
function bystander(t: ExecutionContext): ChildProcess {
  const c = spawn('sleep', ['300'], { detached: true, stdio: 'ignore' });
  t.teardown(() => c.kill('SIGKILL'));
  return c;
}

const alive = (c: ChildProcess) => c.exitCode === null && c.signalCode === null;

/**
 * baton started with `resume` as BATON_RESUME. Refused, it exits at once; one that takes the state
 * runs on and is stopped as an operator would (SIGTERM), which is when it signals what it adopted.
 */
async function forged(resume: unknown): Promise<{ code: number | null; stderr: string }> {
  const b = new Baton(args, { BATON_RESUME: JSON.stringify(resume) });
  const exited = () => b.child.exitCode !== null || b.child.signalCode !== null;
  await Promise.race([b.exited, sleep(3000)]);
  if (!exited()) b.signal('SIGTERM');
  await Promise.race([b.exited, sleep(3000)]);
  if (!exited()) b.signal('SIGKILL'); // it waits for a process that is not its child
  const { code } = await b.exited;
  return { code, stderr: b.stderr };
}

const refusal = (why: string) => new RegExp(`^error: refusing BATON_RESUME: ${why}$`, 'm');

test('BATON_RESUME adopting a process not baton’s child: refused, the process not signalled (M7)', async (t) => {
  const other = bystander(t);
  const r = await forged(state([{ pid: other.pid! }], runtimeDir(t)));
  t.is(r.code, 1, r.stderr);
  t.regex(r.stderr, refusal(`pid ${other.pid} is not a child of baton leading its own process group`));
  await sleep(100);
  t.true(alive(other), 'the process it named still runs');
});

test('BATON_RESUME with a foreign runtime directory, writer or listener fd, or malformed: refused (M7)', async (t) => {
  const elsewhere = runtimeDir(t, 'victim-');
  writeFileSync(join(elsewhere, 'keep'), 'data');
  let r = await forged(state([], elsewhere));
  t.is(r.code, 1, r.stderr);
  t.regex(r.stderr, refusal(`${elsewhere} is not a runtime directory of this user's baton`));
  t.true(existsSync(join(elsewhere, 'keep')), 'the directory is left alone');
  r = await forged({ ...state([], runtimeDir(t)), from: { pid: process.pid, starttime: startTime(process.pid) } });
  t.regex(r.stderr, refusal(`it was written by pid ${process.pid}, not by this process before its execve`));
  const stdin = { fd: 0, name: 'listener0', address: { kind: 'tcp' } };
  r = await forged({ ...state([], runtimeDir(t)), listeners: [stdin] });
  t.regex(r.stderr, refusal('fd 0 \\(listener listener0\\) is not a listening socket'));
  r = await forged({ listeners: 'none' });
  t.regex(r.stderr, refusal('it is not the state a baton writes'));
});

// The review's reproduction: in a PID namespace, a state naming pid 1 made baton kill(-1, SIGTERM) on stop.
needs('unshare').serial(
  'a BATON_RESUME naming pid 1 is refused: the other processes in the namespace live (M7)',
  async (t) => {
    const dir = runtimeDir(t);
    const resume = JSON.stringify(state([{ pid: 1 }], dir));
    const script = [
      'sleep 300 & a=$!',
      'sleep 300 & b=$!',
      `BATON_RESUME='${resume}' ${process.execPath} ${cli} --control ${dir}/c.sock ${args.join(' ')} \\`,
      `  2>${dir}/err & n=$!`,
      'sleep 2; kill -TERM $n 2>/dev/null; sleep 2',
      'kill -0 $a && kill -0 $b && echo bystanders-alive',
      'kill -KILL $n 2>/dev/null; wait $n; echo baton-exit=$?',
    ].join('\n');
    const r = spawnSync('unshare', ['-pf', '--mount-proc', 'sh', '-c', script], {
      cwd: root,
      encoding: 'utf8',
      timeout: 20_000,
    });
    const err = spawnSync('cat', [`${dir}/err`], { encoding: 'utf8' }).stdout;
    t.regex(r.stdout, /bystanders-alive/, err);
    t.regex(r.stdout, /baton-exit=1$/m, err);
    t.regex(err, refusal('pid 1 is not a child of baton leading its own process group'));
  },
);

// The steering state file names the generation a restarted baton takes over (and later stops).
needs('bpf').serial(
  'a steering state naming a process that is not baton’s generation: it is not taken over (M7)',
  async (t) => {
    const w = new SteerWorld();
    const portArgs = ['--steer', '127.0.0.1:80', '--handover', 'port', '--', 'node', fixture];
    try {
      const first = w.baton(['--keep-steering', ...portArgs]);
      await first.event('active', 1);
      t.is((await first.stop()).code, 0);
      // Another process listening on a port, named in the state as the generation serving there.
      const listen = "require('net').createServer().listen(8081, '127.0.0.1', () => console.log('up'))";
      const other = spawn(w.ns.prefix[0]!, [...w.ns.prefix.slice(1), process.execPath, '-e', listen], {
        detached: true,
      });
      await new Promise((r) => other.stdout.once('data', r));
      const generation = { number: 1, pid: other.pid!, starttime: startTime(other.pid!), port: 8081 };
      mkdirSync(w.stateDir, { recursive: true });
      writeFileSync(join(w.stateDir, 'state.json'), JSON.stringify({ name: w.name, pid: 999999, generation }));
      const b = w.baton(portArgs);
      await b.event('active');
      t.is((await b.stop()).code, 0);
      t.false(
        b.events.some((e) => e.event === 'orphan'),
        'no orphan was taken over',
      );
      t.true(alive(other), 'the process the state named still runs');
    } finally {
      await w.close();
    }
  },
);
