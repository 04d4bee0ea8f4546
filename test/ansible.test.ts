// examples/ansible/rolling-upgrade.yml (issue 10) run by Debian's ansible-playbook against two batons on this
// machine: two inventory "hosts" with ansible_connection=local, each a deploy directory (releases/, `current`)
// and a baton started with --cwd on its `current`. Ansible works only in the test's own directories: its HOME,
// temp and config are there, no facts, no retry files, no network.
import { execFile, execFileSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readlinkSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { Baton, cli, fixture, inherited, type LogEvent, root } from './helpers/baton.js';
import { gaps, get, hammer, type LoadResult } from './helpers/load.js';
import { exclusive } from './helpers/lock.js';
import { needs } from './helpers/needs.js';
import { running, startTime, uptime } from './helpers/procs.js';

const test = needs('ansible-playbook');
const play = `${root}examples/ansible/rolling-upgrade.yml`;

/** The controller's side: the release tarballs (app-VERSION.tar.gz) and Ansible's own home, config and temp. */
function controller(): string {
  const dir = mkdtempSync(join(tmpdir(), 'baton-ansible-'));
  const releases: Record<string, string> = {
    r2: `import ${JSON.stringify(fixture)};\n`,
    // A release that dies at start (a missing module, a bad setting): it exits before it is ready.
    bad: 'process.exit(3);\n',
  };
  for (const [version, server] of Object.entries(releases)) {
    mkdirSync(join(dir, 'src', version), { recursive: true });
    writeFileSync(join(dir, 'src', version, 'server.mjs'), server);
  }
  for (const version of Object.keys(releases))
    execFileSync('tar', ['-czf', join(dir, `app-${version}.tar.gz`), '-C', join(dir, 'src', version), '.']);
  mkdirSync(join(dir, 'home'));
  writeFileSync(join(dir, 'ansible.cfg'), '[defaults]\n');
  return dir;
}

interface Host {
  name: string;
  /** Its app_dir: releases/ and `current`. */
  dir: string;
  baton: Baton;
}

/** One "host": `current` leads to releases/r1, and a baton serves from `current`. */
function host(name: string): Host {
  const dir = mkdtempSync(join(tmpdir(), `baton-${name}-`));
  mkdirSync(join(dir, 'releases', 'r1'), { recursive: true });
  writeFileSync(join(dir, 'releases', 'r1', 'server.mjs'), `import ${JSON.stringify(fixture)};\n`);
  symlinkSync('releases/r1', join(dir, 'current'));
  const current = join(dir, 'current');
  const args = ['--listen', '127.0.0.1:0', '--cwd', current, '--drain', '200ms', '--', 'node', 'server.mjs'];
  return { name, dir, baton: new Baton(args) };
}

/** ansible-playbook with the play, hosts in order; its exit code and output. */
function rollout(ctl: string, hosts: Array<Host>, version: string) {
  const inventory = join(ctl, `hosts-${version}`);
  const line = (h: Host) => `${h.name} ansible_connection=local app_dir=${h.dir} baton_control=${h.baton.control}`;
  const vars = 'ansible_python_interpreter="{{ ansible_playbook_python }}"';
  writeFileSync(inventory, `[app]\n${hosts.map(line).join('\n')}\n[app:vars]\n${vars}\n`);
  const env = {
    ...inherited(),
    HOME: join(ctl, 'home'),
    ANSIBLE_CONFIG: join(ctl, 'ansible.cfg'),
    ANSIBLE_HOME: join(ctl, 'home', '.ansible'),
    ANSIBLE_LOCAL_TEMP: join(ctl, 'tmp-local'),
    ANSIBLE_REMOTE_TEMP: join(ctl, 'tmp-remote'),
    ANSIBLE_RETRY_FILES_ENABLED: 'false',
    ANSIBLE_GATHERING: 'explicit',
    ANSIBLE_NOCOLOR: '1',
    ANSIBLE_PIPELINING: '1',
    LC_ALL: 'C.UTF-8',
  };
  const args = ['-i', inventory, play, '-e', `version=${version}`, '-e', `dist=${ctl}`, '-e', `baton=${cli}`];
  return new Promise<{ code: number; out: string }>((resolve) =>
    execFile('ansible-playbook', args, { cwd: ctl, env, timeout: 100_000 }, (err, out, stderr) =>
      resolve({ code: err ? Number(err.code ?? -1) : 0, out: out + stderr }),
    ),
  );
}

const ms = (e: LogEvent) => Date.parse(String(e.time));
/** The wall-clock time a process started, from /proc/PID/stat (ms since boot, in ticks). */
const started = (pid: number) => Date.now() - uptime() + Number(startTime(pid));
/** When (ms since its load began) a request first and last got an answer from `generation`. */
function answeredAt(r: LoadResult, generation: number): { first: number; last: number } {
  const at = r.samples!.filter((s) => s[3] === generation).map((s) => s[0]);
  return { first: Math.min(...at), last: Math.max(...at) };
}

/** Two hosts serving r1 under load, the play run with `version`; the loads, the play's result. */
async function fleet(t: ExecutionContext, version: string, check: (r: Fleet) => Promise<void>): Promise<void> {
  const ctl = controller();
  const hosts = [host('host1'), host('host2')];
  const lock = await exclusive();
  const loads: Array<ReturnType<typeof hammer>> = [];
  try {
    const firsts = await Promise.all(hosts.map((h) => h.baton.event('active', 1)));
    const ports = await Promise.all(hosts.map((h) => h.baton.port()));
    for (const port of ports) loads.push(hammer({ port, keepAlive: false, concurrency: 1, maxMs: 120_000 }));
    const linked = hosts.map((h) => lstatSync(join(h.dir, 'current')).mtimeMs);
    const began = performance.now();
    const played = await rollout(ctl, hosts, version);
    const took = performance.now() - began;
    t.log(`ansible-playbook took ${Math.round(took)} ms`);
    const done = await Promise.all(loads.map((l) => l.stop()));
    await check({ hosts, ports, firsts, linked, played, loads: done });
  } finally {
    await Promise.all(loads.map((l) => l.stop()));
    lock();
    await Promise.all(hosts.map((h) => h.baton.stop()));
    for (const dir of [ctl, ...hosts.map((h) => h.dir)]) rmSync(dir, { recursive: true, force: true });
  }
}

interface Fleet {
  hosts: Array<Host>;
  ports: number[];
  firsts: LogEvent[];
  /** Each host's `current` link's mtime before the play. */
  linked: number[];
  played: { code: number; out: string };
  loads: LoadResult[];
}

const cwdOf = (pid: number) => readlinkSync(`/proc/${pid}/cwd`);

test.serial('a good release: the play upgrades host1, then host2, each through reload --wait; under load', (t) =>
  fleet(t, 'r2', async ({ hosts, ports, played, loads }) => {
    t.is(played.code, 0, played.out);
    const [h1, h2] = hosts as [Host, Host];
    for (const [i, h] of hosts.entries()) {
      const active = await h.baton.event('active', 2, 1000);
      const r2 = realpathSync(join(h.dir, 'releases', 'r2'));
      t.is(cwdOf(active.pid), r2, `${h.name}'s generation 2 runs the shipped release`);
      t.regex(await get(ports[i]!), new RegExp(`^pid=${active.pid} generation=2 `), `${h.name} answers from it`);
      t.is(readlinkSync(join(h.dir, 'current')), 'releases/r2');
      t.deepEqual(gaps(loads[i]!), [], `${h.name} served the whole play`);
    }
    // One at a time: host2's link was re-pointed, and its generation 2 started, after host1's was active ...
    const h1Active = ms(await h1.baton.event('active', 2));
    const h2Spawn = await h2.baton.event('spawn', 2);
    t.true(lstatSync(join(h2.dir, 'current')).mtimeMs > h1Active, "host2's link moved after host1 was upgraded");
    t.true(started(h2Spawn.pid) > h1Active, "host2's generation 2 started after host1's was active");
    // ... and on the wire: host2 still answered from generation 1 after host1 answered from generation 2.
    const [one, two] = loads as [LoadResult, LoadResult];
    t.true(answeredAt(two, 1).last > answeredAt(one, 2).first, 'host2 served generation 1 while host1 served 2');
  }),
);

test.serial("a release that exits before ready: the play stops at host1 with baton's reason; host2 untouched", (t) =>
  fleet(t, 'bad', async ({ hosts, ports, firsts, linked, played, loads }) => {
    const [h1, h2] = hosts as [Host, Host];
    t.not(played.code, 0, played.out);
    t.regex(played.out, /upgrade to generation 2 failed: exited with code 3 before ready/, 'baton says why');
    t.regex(played.out, /host1\s+: ok=\d+\s+changed=\d+\s+unreachable=0\s+failed=1/);
    t.notRegex(played.out, /host2\s+:/, 'the play never reached host2');
    // host1 tried the release and rolled back: generation 1 serves, `current` leads back to r1.
    await h1.baton.event('rollback');
    t.regex(await get(ports[0]!), new RegExp(`^pid=${firsts[0]!.pid} generation=1 `));
    t.is(readlinkSync(join(h1.dir, 'current')), 'releases/r1');
    t.deepEqual(gaps(loads[0]!), [], 'host1 served through the failed upgrade');
    // host2: nothing shipped, its link not re-pointed, no generation 2 started.
    t.false(existsSync(join(h2.dir, 'releases', 'bad')), 'no release shipped to host2');
    t.is(readlinkSync(join(h2.dir, 'current')), 'releases/r1');
    t.is(lstatSync(join(h2.dir, 'current')).mtimeMs, linked[1], "host2's link was never replaced");
    t.false(
      h2.baton.events.some((e) => e.event === 'spawn' && e.generation === 2),
      'host2 started no generation 2',
    );
    t.deepEqual(running(h2.baton.pid), [firsts[1]!.pid], "host2's baton runs its generation 1 alone");
    t.deepEqual(loads[1]!.generations, new Map([[1, loads[1]!.ok]]), 'host2 answered from generation 1 only');
  }),
);
