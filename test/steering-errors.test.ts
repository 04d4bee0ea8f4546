import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { attachSkLookup, getPinned, loadObject, pinObject } from '../supervisor/sys/bpf.js';
import { progTag, skLookupLinks } from '../supervisor/sys/bpf-info.js';
import { closeFd } from '../supervisor/sys/fd.js';
import { Baton, cli, fixture, root } from './helpers/baton.js';
import { type RefuseOptions, refuses, scratch } from './helpers/leftovers.js';
import { needs } from './helpers/needs.js';
import { Netns } from './helpers/netns.js';
import { until } from './helpers/procs.js';
import { SteerWorld } from './helpers/steer.js';

/** The test's second sk_lookup program, built from other-steer.c by `npm run build:bpf` and committed. */
const otherObject = `${root}test/fixtures/other-steer.o`;

/**
 * baton in the world's namespace (or `ns`), refused: the shared check (exit code, stderr exactly the
 * `error:` and `hint:` lines, nothing left behind), and the world's pins and state directory as they were.
 */
async function refused(
  t: ExecutionContext,
  w: SteerWorld,
  args: string[],
  code: number,
  error: RegExp,
  hint: RegExp,
  o: RefuseOptions = {},
  ns: { prefix: string[] } = w.ns,
) {
  const before = w.owned();
  const r = await refuses(t, ['--name', w.name, '--state-dir', w.stateDir, ...args], code, error, hint, {
    ...o,
    prefix: [...ns.prefix, ...(o.prefix ?? [])],
  });
  t.deepEqual(w.owned(), before, 'the pins and the state directory are as they were');
  return r;
}

const steerArgs = ['--steer', '127.0.0.1:80', '--listen', '127.0.0.1:0', '--', 'node', fixture];

async function inWorld(body: (w: SteerWorld) => Promise<void> | void) {
  const w = new SteerWorld();
  try {
    await body(w);
  } finally {
    await w.close();
  }
}

/** A Node one-liner running inside the world's namespace; resolves once it printed its first line. */
async function inside(w: SteerWorld, script: string) {
  const c = spawn(w.ns.prefix[0]!, [...w.ns.prefix.slice(1), process.execPath, '-e', script]);
  await new Promise((r) => c.stdout.once('data', r));
  return c;
}

/** The tag of the program pinned at `path` (the pin is opened and closed again). */
function pinnedTag(path: string): string {
  const fd = getPinned(path);
  try {
    return progTag(fd);
  } finally {
    closeFd(fd);
  }
}

/** The refusal's error line: NAME belongs to the running baton PID. */
const runningBaton = (w: SteerWorld, pid: number) =>
  new RegExp(`^steering ${w.name} belongs to a running baton \\(pid ${pid}\\)$`);

/** `baton steer clean` for the world's name. */
const clean = (w: SteerWorld) =>
  spawnSync(process.execPath, [cli, 'steer', 'clean', '--name', w.name, '--state-dir', w.stateDir], {
    encoding: 'utf8',
  });

needs('bpf').serial('pins of a different program are refused', (t) =>
  inWorld(async (w) => {
    const other = loadObject(otherObject, 'other', []);
    const tag = progTag(other.prog);
    mkdirSync(w.pins, { recursive: true });
    pinObject(other.prog, join(w.pins, 'prog'));
    pinObject(other.prog, join(w.pins, 'link'));
    other.close();
    const message = /^the pins at \S+ belong to a different program \(tag ([0-9a-f]{16}), baton's is ([0-9a-f]{16})\)$/;
    const hint = new RegExp(`^remove them with baton steer clean --name ${w.name}`);
    const r = await refused(t, w, steerArgs, 1, message, hint);
    const [, theirs, ours] = /\(tag ([0-9a-f]{16}), baton's is ([0-9a-f]{16})\)/.exec(r.stderr)!;
    t.is(theirs, tag, "the tag named is the pinned program's");
    t.not(ours, tag);
    t.is(pinnedTag(join(w.pins, 'prog')), tag, 'the other pins are left alone');
    const c = clean(w);
    t.is(c.status, 0, c.stderr);
    t.regex(c.stdout, /removed the pins/);
    t.false(w.pinned());
  }),
);

needs('bpf').serial('--keep-steering leaves the pins; baton steer clean removes them', (t) =>
  inWorld(async (w) => {
    const b = w.baton(['--keep-steering', ...steerArgs]);
    await b.event('active', 1);
    await b.stop();
    t.true(w.pinned());
    t.notThrows(() => closeFd(getPinned(join(w.pins, 'link'))));
    // The link still runs with an empty slot (baton's listener is closed): the lookup fails, even
    // where another socket is bound on the steered port; an unsteered port is the kernel's as usual.
    const echo = "for (const p of [80, 81]) require('net').createServer((c) => c.pipe(c)).listen(p, '127.0.0.1')";
    const other = await inside(w, `${echo}; console.log('up')`);
    try {
      const r = await w.echo(['127.0.0.1:80', '127.0.0.1:81']);
      t.deepEqual(r, { '127.0.0.1:80': 'ECONNREFUSED', '127.0.0.1:81': 'ok' });
    } finally {
      other.kill();
    }
    const c = clean(w);
    t.is(c.status, 0, c.stderr);
    t.false(w.pinned());
  }),
);

needs('bpf').serial('a rule over another process’s listener is refused; --force steers with a warning', (t) =>
  inWorld(async (w) => {
    // A listener of another process inside the namespace, on the steered address and port.
    const other = await inside(w, "require('net').createServer().listen(80, '127.0.0.1', () => console.log('up'))");
    try {
      const at = '127\\.0\\.0\\.1:80';
      const head = '^--steer would take connections from another process listening on';
      const message = new RegExp(`${head} ${at} \\(uid 0, --steer ${at}\\)$`);
      await refused(t, w, steerArgs, 1, message, /--force/);
      const b = w.baton(['--force', ...steerArgs]);
      await b.event('active', 1);
      t.regex(String(b.events.find((e) => e.event === 'warning')?.message), /127\.0\.0\.1:80/);
      await b.stop();
    } finally {
      other.kill();
    }
  }),
);

needs('bpf', 'setpriv').serial('steering errors: one error line, one hint, nothing left behind', (t) =>
  inWorld(async (w) => {
    const rest = steerArgs.slice(2);
    await refused(t, w, ['--steer', '127.0.0.1:80-70', ...rest], 2, /bad port or range "80-70"/, /LOW-HIGH/);
    await refused(t, w, ['--steer', 'example.com:80', ...rest], 2, /"example\.com" is not an IP address/, /ADDRESS/);
    await refused(t, w, ['--steer', '127.0.0.1/33:80', ...rest], 2, /bad prefix length "\/33"/, /0 to 32/);
    await refused(
      t,
      w,
      ['--steer', '127.0.0.0/8:80', '--steer', '127.0.0.1:80,81', ...rest],
      2,
      /--steer 127\.0\.0\.1:80,81 overlaps --steer 127\.0\.0\.0\/8:80 on port 80/,
      /one rule only/,
    );
    await refused(t, w, ['--steer', 'udp:127.0.0.1:53', ...rest], 2, /UDP steering is not supported/, /TCP/);
    await refused(
      t,
      w,
      ['--handover', 'port', '--', 'true'],
      2,
      /--handover port needs --steer/,
      /--steer 0\.0\.0\.0:8080/,
    );
    await refused(t, w, steerArgs, 1, /cannot load \/nonexistent\/libbpf\.so\.1/, /install libbpf/, {
      env: { BATON_LIBBPF: '/nonexistent/libbpf.so.1' },
    });
    await refused(
      t,
      w,
      steerArgs,
      1,
      /bpffs is not mounted at \/proc\/baton-bpffs and cannot be mounted/,
      /mount -t bpf/,
      { env: { BATON_BPFFS: '/proc/baton-bpffs' } },
    );
    await refused(t, w, steerArgs, 1, /steering needs CAP_BPF and CAP_NET_ADMIN/, /run baton as root/, {
      prefix: ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all'],
    });
  }),
);

needs('bpf').serial('a refusal after the listeners opened closes them: nothing listens, the socket file is gone', (t) =>
  inWorld(async (w) => {
    const sock = join(scratch(t), 'listener.sock');
    const args = ['--steer', '127.0.0.1:80', '--shared-socket', '--listen', '127.0.0.1:0', '--listen', `unix:${sock}`];
    args.push('--', 'node', fixture);
    const noLibbpf = { env: { BATON_LIBBPF: '/nonexistent/libbpf.so.1' } };
    // The listeners are opened before steering is loaded: a bad --listen is reported, not the missing libbpf.
    writeFileSync(sock, 'not a socket');
    await refused(t, w, args, 1, /listener\.sock exists and is not a socket/, /remove it/, noLibbpf);
    t.is(readFileSync(sock, 'utf8'), 'not a socket', "a file that is not baton's socket is left alone");
    rmSync(sock);
    // With the path free both listeners open, then loading libbpf fails: both are closed again.
    await refused(t, w, args, 1, /cannot load \/nonexistent\/libbpf\.so\.1/, /install libbpf/, noLibbpf);
    t.false(existsSync(sock), 'the unix socket file is removed');
    t.deepEqual(w.listening(), [], 'nothing listens in the namespace');
    t.deepEqual(w.processes(), [], 'no process is left in the namespace');
  }),
);

needs('bpf').serial('pins attached to another network namespace are refused', (t) =>
  inWorld(async (w) => {
    const first = w.baton(['--keep-steering', ...steerArgs]);
    await first.event('active', 1);
    await first.stop();
    const other = new Netns();
    try {
      const message = /^the pins at \S+ steer another network namespace \(inode \d+, this one is \d+\)$/;
      const hint = new RegExp(`^remove them with baton steer clean --name ${w.name}, or choose another --name$`);
      await refused(t, w, steerArgs, 1, message, hint, {}, other);
      t.true(w.pinned(), 'the pins are left alone');
    } finally {
      other.remove();
    }
  }),
);

needs('bpf').serial('a wildcard listener of another process is shadowed too', (t) =>
  inWorld(async (w) => {
    const other = await inside(w, "require('net').createServer().listen(80, '0.0.0.0', () => console.log('up'))");
    try {
      const message = /another process listening on 0\.0\.0\.0:80 \(uid 0, --steer 127\.0\.0\.1:80\)/;
      await refused(t, w, steerArgs, 1, message, /--force/);
    } finally {
      other.kill();
    }
  }),
);

needs('bpf').serial("a second baton with the same --name is refused with the first's pid; the first serves on", (t) =>
  inWorld(async (w) => {
    const first = w.baton(steerArgs);
    await first.event('active', 1);
    // Generation 1's socket, and the next generation's, made ahead with its keeper once generation 1 serves.
    const listening = await until('the next socket made ahead', () =>
      w.listening().length === 2 ? w.listening() : undefined,
    );
    const processes = w.processes().sort();
    await refused(t, w, steerArgs, 1, runningBaton(w, first.pid), new RegExp(`^stop it first \\(kill ${first.pid}\\)`));
    t.deepEqual(w.listening(), listening, "the first baton's listener is untouched");
    t.deepEqual(w.processes().sort(), processes, 'the first baton and its generation, nothing more');
    const r = await w.load({ port: 80, keepAlive: false, concurrency: 2, maxRequests: 20, maxMs: 10_000 });
    t.is(r.ok, 20, JSON.stringify(r.failures));
    t.deepEqual([...r.generations.keys()], [1]);
    t.is((await first.stop()).code, 0);
    t.false(w.pinned());
  }),
);

needs('bpf').serial('baton steer clean while the baton runs is refused and removes nothing', (t) =>
  inWorld(async (w) => {
    const first = w.baton(['--steer', '127.0.0.1:80', '--handover', 'port', '--', 'node', fixture]);
    await first.event('active', 1);
    const owned = w.owned();
    const state = readFileSync(join(w.stateDir, 'state.json'), 'utf8');
    await refuses(
      t,
      ['steer', 'clean', '--name', w.name, '--state-dir', w.stateDir],
      1,
      runningBaton(w, first.pid),
      new RegExp(`^stop it first \\(kill ${first.pid}\\)`),
    );
    t.deepEqual(w.owned(), owned, 'the pins and the state are all there');
    t.is(readFileSync(join(w.stateDir, 'state.json'), 'utf8'), state);
    const r = await w.load({ port: 80, keepAlive: false, concurrency: 2, maxRequests: 20, maxMs: 10_000 });
    t.is(r.ok, 20, JSON.stringify(r.failures));
    t.deepEqual([...r.generations.keys()], [1]);
    t.is((await first.stop()).code, 0);
    t.false(w.pinned());
  }),
);

/** The ids of the sk_lookup links attached to the world's namespace, pinned or not. */
const links = (w: SteerWorld) => skLookupLinks(w.ns.inode).map((l) => l.id);

/** The body of one HTTP request to 127.0.0.1:`port` from inside the world's namespace. */
function answer(w: SteerWorld, port: number): string {
  const script = `fetch('http://127.0.0.1:${port}/').then((r) => r.text()).then((b) => console.log(b.trim()))`;
  const [command, ...args] = w.inside(process.execPath, '-e', script);
  const r = spawnSync(command!, args, { encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 ? r.stdout.trim() : `failed: ${r.stderr}`;
}

// The fault review's F10: a baton restarted where the pins of its killed predecessor are not visible
// attached a second program, which never got a connection, and reported success.
needs('bpf').serial(
  'a restart that cannot see the pins of the generation still serving is refused (split-brain)',
  (t) =>
    inWorld(async (w) => {
      const args = ['--steer', '127.0.0.1:80', '--handover', 'port', '--', 'node', fixture];
      const first = w.baton(args);
      const orphan = (await first.event('active', 1)).pid;
      first.signal('SIGKILL');
      await first.exited;
      const attached = links(w);
      t.is(attached.length, 1, "the killed baton's link");
      // `ip netns exec` gives baton a private mount namespace whose /sys has no bpffs: it would mount an empty one.
      const hidden = { prefix: ['ip', 'netns', 'exec', w.ns.name] };
      const serving = `generation 1 \\(pid ${orphan}\\) of a previous baton still serves`;
      const pins = new RegExp(`^${serving}, but its steering pins are not at ${w.pins}$`);
      const visible = new RegExp(
        `^start baton where they are visible .*nsenter --net= keeps them.*\\(kill ${orphan}\\) first$`,
      );
      await refused(t, w, args, 1, pins, visible, {}, hidden);
      // With a state directory of its own it finds no state, but the orphan's link in the namespace.
      const state = join(scratch(t), 'state');
      const link = `link ${attached[0]} \\(program \\d+ baton_steer, tag [0-9a-f]{16}\\)`;
      const other = new RegExp(`^another sk_lookup program is attached to this network namespace: ${link}$`);
      const detach = new RegExp(
        `^it is a baton's steering whose pins are not visible here .*bpftool link detach id ${attached[0]}\\)$`,
      );
      await refuses(t, ['--name', w.name, '--state-dir', state, ...args], 1, other, detach, { prefix: hidden.prefix });
      t.deepEqual(links(w), attached, 'no second link was attached');
      t.is(answer(w, 80), `pid=${orphan} generation=1 worker=0 listener=own`, 'the orphan serves on');
      t.deepEqual(w.processes(), [orphan], 'nothing else runs in the namespace');
    }),
);

needs('bpf').serial(
  'another sk_lookup program is refused, naming its link and program; --force steers alongside',
  (t) =>
    inWorld(async (w) => {
      const other = loadObject(otherObject, 'other', []);
      const tag = progTag(other.prog);
      const fd = openSync(w.ns.path, 'r');
      const link = attachSkLookup(other.prog, fd);
      closeSync(fd);
      try {
        const [id] = links(w);
        const named = `link ${id} \\(program \\d+ other, tag ${tag}\\)`;
        const message = new RegExp(`^another sk_lookup program is attached to this network namespace: ${named}$`);
        const hint = new RegExp(`^detach it if it is stale \\(bpftool link detach id ${id}\\), or pass --force`);
        await refused(t, w, steerArgs, 1, message, hint);
        t.deepEqual(links(w), [id], 'no second link was attached');
        // other-steer passes every connection on (it drops only port 1): baton's program, after it, steers.
        const b = w.baton(['--force', ...steerArgs]);
        const active = await b.event('active', 1);
        t.regex(
          String(b.events.find((e) => e.event === 'warning')?.message),
          new RegExp(`^steering alongside ${named}`),
        );
        t.regex(answer(w, 80), new RegExp(`^pid=${active.pid} generation=1 `));
        t.is((await b.stop()).code, 0);
        t.deepEqual(links(w), [id], "baton's own link is gone, the other one is left alone");
      } finally {
        closeFd(link);
        other.close();
      }
    }),
);

needs('bpf').serial('a second baton with another --name steers other ports of the same namespace', (t) =>
  inWorld(async (w) => {
    const first = w.baton(steerArgs);
    const one = await first.event('active', 1);
    const name = `${w.name}b`;
    t.teardown(() => rmSync(join(w.pins, '..', name), { recursive: true, force: true }));
    const state = join(scratch(t), 'state');
    const args = ['--name', name, '--state-dir', state, '--steer', '127.0.0.1:81', '--listen', '127.0.0.1:0'];
    const second = new Baton([...args, '--', 'node', fixture], {}, w.ns.prefix);
    w.batons.push(second);
    const two = await second.event('active', 1);
    t.is(links(w).length, 2);
    t.regex(answer(w, 80), new RegExp(`^pid=${one.pid} `));
    t.regex(answer(w, 81), new RegExp(`^pid=${two.pid} `));
    t.is((await second.stop()).code, 0);
    t.is((await first.stop()).code, 0);
    t.deepEqual(links(w), []);
  }),
);
