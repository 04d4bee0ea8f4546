// The security review's M5 and L7 (issue 17): who may touch the steering's pin directories, and what
// another user's listener can refuse. Each test has a bpffs of its own, in a mount namespace of its own.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  renameSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { skLookupLinks } from '../supervisor/sys/bpf-info.js';
import { Baton, fixture } from './helpers/baton.js';
import { refuses } from './helpers/leftovers.js';
import { needs } from './helpers/needs.js';
import { SteerWorld } from './helpers/steer.js';

const NOBODY = 65534;
const asNobody = ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--inh-caps=-all'];
const steerArgs = ['--steer', '127.0.0.1:80', '--listen', '127.0.0.1:0', '--', 'node', fixture];

/**
 * A mount namespace of the test's own, held by a sleeping process, with a directory `dir` that is a
 * fresh bpffs there (mounted as the kernel makes it, 1777, as /sys/fs/bpf often is) or, with
 * `mounted` false, an empty directory for baton to mount one on.
 */
class PrivateBpffs {
  readonly dir = mkdtempSync(join(tmpdir(), 'baton-bpffs-'));
  private readonly holder: ChildProcess;
  readonly up: Promise<void>;

  constructor(mounted: boolean) {
    const mount = mounted ? `mount -t bpf bpf ${this.dir} && ` : '';
    const script = `${mount}echo up && exec sleep 300`;
    this.holder = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script]);
    this.up = new Promise((resolve) => this.holder.stdout!.once('data', () => resolve()));
  }

  /** `path` under the namespace's root, as the test (root, outside it) sees it. */
  at(path = ''): string {
    return `/proc/${this.holder.pid}/root${this.dir}${path}`;
  }

  /** Prefix that runs a command in this mount namespace and `w`'s network namespace. */
  prefix(w: SteerWorld): string[] {
    return ['nsenter', `--mount=/proc/${this.holder.pid}/ns/mnt`, `--net=${w.ns.path}`];
  }

  /** Runs `command` as uid 65534 in the mount namespace; its exit status. */
  asNobody(...command: string[]): number | null {
    const r = spawnSync('nsenter', [`--mount=/proc/${this.holder.pid}/ns/mnt`, ...asNobody, ...command]);
    return r.status;
  }

  /** Ends the namespace, and with it the bpffs and every pin in it. */
  close(): void {
    this.holder.kill('SIGKILL');
    rmdirSync(this.dir); // outside the namespace it was always empty
  }
}

async function inWorld(mounted: boolean, body: (w: SteerWorld, fs: PrivateBpffs) => Promise<void>) {
  const w = new SteerWorld();
  const fs = new PrivateBpffs(mounted);
  try {
    await fs.up;
    await body(w, fs);
  } finally {
    await w.close();
    fs.close();
  }
}

function baton(w: SteerWorld, fs: PrivateBpffs, args: string[]): Baton {
  const b = new Baton([...w.batonArgs, ...args], { BATON_BPFFS: fs.dir }, fs.prefix(w));
  w.batons.push(b);
  return b;
}

/** What `127.0.0.1:80` answers inside the world once a server of the test's listens there: 'ok' unless steered away. */
async function portAnswers(w: SteerWorld): Promise<string> {
  const echo = "require('net').createServer((c) => c.pipe(c)).listen(80, '127.0.0.1', () => console.log('up'))";
  const server = spawn(w.ns.prefix[0]!, [...w.ns.prefix.slice(1), process.execPath, '-e', echo]);
  try {
    await new Promise((r) => server.stdout.once('data', r));
    return (await w.echo(['127.0.0.1:80']))['127.0.0.1:80']!;
  } finally {
    server.kill();
  }
}

const mode = (path: string) => (statSync(path).mode & 0o7777).toString(8);

needs('bpf', 'setpriv', 'unshare').serial(
  'bpffs baton mounts and the pin directories it makes are 0700: another uid cannot move the pins (M5)',
  (t) =>
    inWorld(false, async (w, fs) => {
      const b = baton(w, fs, steerArgs);
      await b.event('active', 1);
      t.is(mode(fs.at()), '1700', 'the bpffs baton mounted (the kernel adds the sticky bit)');
      t.is(mode(fs.at('/baton')), '700');
      t.is(mode(fs.at(`/baton/${w.name}`)), '700');
      t.not(fs.asNobody('mv', `${fs.dir}/baton/${w.name}`, `${fs.dir}/baton/moved`), 0, 'uid 65534 cannot move them');
      t.is((await b.stop()).code, 0);
      t.is(await portAnswers(w), 'ok', 'the port is not steered after a clean stop');
    }),
);

needs('bpf', 'setpriv', 'unshare').serial(
  'a baton/ directory another uid made in a world-writable bpffs is refused; the port stays free (M5)',
  (t) =>
    inWorld(true, async (w, fs) => {
      t.is(mode(fs.at()), '1777');
      t.is(fs.asNobody('mkdir', `${fs.dir}/baton`), 0, 'uid 65534 claims baton/ first');
      const message = new RegExp(`^refusing ${fs.dir}/baton for the steering pins: it belongs to uid ${NOBODY}$`);
      const hint = new RegExp(`^remove ${fs.dir}/baton \\(and what is in it\\), or choose another --name$`);
      await refuses(t, [...w.batonArgs, ...steerArgs], 1, message, hint, {
        env: { BATON_BPFFS: fs.dir },
        prefix: fs.prefix(w),
      });
      t.is(spawnSync('ls', ['-A', fs.at('/baton')], { encoding: 'utf8' }).stdout, '', 'nothing pinned in it');
      t.deepEqual(skLookupLinks(w.ns.inode), [], 'nothing attached to the namespace');
      t.is(await portAnswers(w), 'ok');
    }),
);

needs('bpf', 'unshare').serial('a clean stop detaches through its link even when the pins were moved away (M5)', (t) =>
  inWorld(true, async (w, fs) => {
    const b = baton(w, fs, steerArgs);
    await b.event('active', 1);
    // What the review's attacker did through a baton/ of its own: the pins moved, an empty decoy in their place.
    renameSync(fs.at(`/baton/${w.name}`), fs.at('/baton/moved'));
    mkdirSync(fs.at(`/baton/${w.name}`), { mode: 0o700 });
    t.is((await b.stop()).code, 0);
    t.deepEqual(skLookupLinks(w.ns.inode), [], 'no sk_lookup link is attached to the namespace');
    t.is(await portAnswers(w), 'ok', 'a new server on the steered port gets its connections');
  }),
);

/** A port uid 65534 may bind. */
const HIGH = 8080;
const steerHigh = ['--steer', `127.0.0.1:${HIGH}`, ...steerArgs.slice(2)];

/** uid 65534 listening on 127.0.0.1:8080 inside the world; killed by the caller. */
async function nobodyListens(w: SteerWorld): Promise<ChildProcess> {
  const listen = `require('net').createServer().listen(${HIGH}, '127.0.0.1', () => console.log('up'))`;
  const c = spawn(w.ns.prefix[0]!, [...w.ns.prefix.slice(1), ...asNobody, process.execPath, '-e', listen]);
  await new Promise((resolve, reject) => {
    c.stdout.once('data', resolve);
    c.once('exit', (code) => reject(new Error(`the listener of uid ${NOBODY} exited ${code}`)));
  });
  return c;
}

async function refusedShadow(t: ExecutionContext, w: SteerWorld, fs: PrivateBpffs) {
  const message = new RegExp(
    `^--steer would take connections from another process listening on 127\\.0\\.0\\.1:${HIGH} ` +
      `\\(uid ${NOBODY}, --steer 127\\.0\\.0\\.1:${HIGH}\\)$`,
  );
  await refuses(t, [...w.batonArgs, ...steerHigh], 1, message, /--force/, {
    env: { BATON_BPFFS: fs.dir },
    prefix: fs.prefix(w),
  });
}

needs('bpf', 'setpriv', 'unshare').serial(
  "another uid's listener on a steered port: the refusal names the uid; a restart over pins is not refused (L7)",
  (t) =>
    inWorld(true, async (w, fs) => {
      const other = await nobodyListens(w);
      try {
        await refusedShadow(t, w, fs);
        // A first baton started before it and left its pins (--keep-steering): the port is steered already.
        other.kill();
        const first = baton(w, fs, ['--keep-steering', ...steerHigh]);
        await first.event('active', 1);
        t.is((await first.stop()).code, 0);
      } finally {
        other.kill();
      }
      const again = await nobodyListens(w);
      try {
        const b = baton(w, fs, steerHigh);
        await b.event('active', 1);
        const warning = b.events.find((e) => e.event === 'warning')?.message;
        t.regex(String(warning), new RegExp(`uid ${NOBODY}.*the pins of an earlier run steer it already`));
        t.is((await b.stop()).code, 0);
      } finally {
        again.kill();
      }
    }),
);

needs('root')(
  'the state directory is checked again on a switch once it is not the one checked: a directory of another user ' +
    'put in its place is refused, as is the same directory made writable by others',
  async (t) => {
    const { StateWriter, readState } = await import('../supervisor/steering/state.js');
    const dir = join(mkdtempSync(join(tmpdir(), 'baton-state-')), 'name');
    const writer = new StateWriter(dir);
    const state = (pid: number) => ({ name: 'name', pid });
    writer.write(state(1));
    writer.write(state(2));
    t.is(readState(dir)?.pid, 2);
    const refused = (why: RegExp) => {
      const err = t.throws(() => writer.write(state(3)));
      t.is((err as { code?: string }).code, 'ERR_BATON_UNSAFE_DIR');
      t.regex(err!.message, why);
    };
    chmodSync(dir, 0o777);
    refused(/it is writable by others \(mode 777\)/);
    rmSync(dir, { recursive: true });
    mkdirSync(dir, { mode: 0o700 });
    chownSync(dir, NOBODY, NOBODY);
    refused(new RegExp(`it belongs to uid ${NOBODY}`));
    t.false(existsSync(join(dir, 'state.json')), 'nothing was written into it');
    // A state planted there could name any process for a restarted baton to take over: it is not read either.
    writeFileSync(join(dir, 'state.json'), JSON.stringify(state(4)));
    const err = t.throws(() => readState(dir));
    t.regex(err!.message, new RegExp(`^refusing ${dir} for the steering state: it belongs to uid ${NOBODY}`));
    rmSync(join(dir, '..'), { recursive: true });
  },
);
