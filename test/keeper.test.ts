// The pidfd handover exposes the listeners and nothing else (issue 17, M2). Each test is the attack: a
// hostile generation tries pidfd_getfd on every fd number of the process `_PID` names and of baton.
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { Baton, fixture, keeperOf, root } from './helpers/baton.js';
import { get } from './helpers/load.js';
import { needs } from './helpers/needs.js';
import { ended, envVar, fdLinks, until } from './helpers/procs.js';

const NOBODY = 65534;
const ZERO = '0000000000000000';
const pullAll = `${root}test/fixtures/pull-all.mjs`;
/** baton as nobody, without capabilities: a generation runs as the same uid. */
const asNobody = ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--inh-caps=-all'];

interface Report {
  source: string[];
  baton: string[];
  errors: { source: string[]; baton: string[] };
}

/** A directory anyone may write a report into, and a control socket path in one only `owner` may. */
function scratch(owner: number): { dir: string; control: string } {
  const dir = mkdtempSync(join(tmpdir(), 'baton-keeper-'));
  chmodSync(dir, 0o777);
  const controlDir = mkdtempSync(join(tmpdir(), 'baton-keeper-ctl-'));
  chownSync(controlDir, owner, owner);
  return { dir, control: join(controlDir, 'c.sock') };
}

/** What generation `n` pulled (the fixture writes it once, whole). */
function report(dir: string, n: number): Promise<Report> {
  const file = join(dir, `report.${n}`);
  return until(`generation ${n}'s report`, () =>
    existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : undefined,
  );
}

/** The sockets of baton's listeners, in fd order of its `listening` events. */
function listenerSockets(b: Baton): string[] {
  return b.events.filter((e) => e.event === 'listening').map((e) => readlinkSync(`/proc/${b.pid}/fd/${e.fd}`));
}

/**
 * baton (started through `prefix`) runs the hostile generation; what it pulled is checked, and, with
 * `again`, once more from generation 2 after a self-upgrade (execve makes a process dumpable again).
 */
async function attack(t: ExecutionContext, prefix: string[], handover: string, command: string[] = [], again = false) {
  const { dir, control } = scratch(prefix === asNobody ? NOBODY : 0);
  const listen = ['--listen', '127.0.0.1:0', '--listen', '127.0.0.1:0'];
  const args = [...listen, '--control', control, '--handover', handover, '--ready', 'delay:0'];
  const b = new Baton([...args, '--', ...command, 'node', pullAll], { REPORT: join(dir, 'report') }, prefix);
  try {
    await b.event('active', 1);
    const listeners = listenerSockets(b);
    const seen = await report(dir, 1);
    t.deepEqual(seen.baton, [], 'nothing from baton');
    t.deepEqual(seen.errors.baton, ['EPERM']);
    const keeper = keeperOf(b.pid);
    if (handover === 'pidfd') {
      t.deepEqual(seen.source, listeners, 'from _PID: the listeners, in order, and nothing else');
      t.truthy(keeper);
      t.deepEqual(fdLinks(keeper!), listeners, 'the keeper holds the listeners and nothing else');
    } else t.is(keeper, undefined, 'no keeper where nothing is pulled');
    t.is(statSync(`/proc/${b.pid}/status`).uid, 0, 'baton is not dumpable: its /proc files belong to root');
    if (!again) return;
    b.signal('SIGUSR2');
    await b.event('resumed');
    t.is(keeperOf(b.pid), undefined, 'the keeper is gone with the program that ran it');
    await b.upgradeTo(2);
    const next = await report(dir, 2);
    t.deepEqual([next.source, next.baton, next.errors.baton], [listeners, [], ['EPERM']], 'the same after the exec');
    t.not(keeperOf(b.pid), keeper, 'a new keeper');
  } finally {
    await b.stop();
  }
}

needs('setpriv')('a generation of a baton running as its own uid pulls only the listeners (pidfd)', (t) =>
  attack(t, asNobody, 'pidfd', [], true),
);

needs('setpriv')('a generation of a baton running as its own uid pulls nothing from it (inherit)', (t) =>
  attack(t, asNobody, 'inherit'),
);

needs('setpriv')(
  'a root generation without capabilities pulls the listeners from the keeper, nothing from baton',
  (t) => attack(t, [], 'pidfd', ['setpriv', '--inh-caps=-all', '--bounding-set=-all', '--']),
);

/** `pid`'s /proc status fields. */
function status(pid: number): Record<string, string> {
  const lines = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n');
  return Object.fromEntries(lines.map((l) => l.split(':\t')).map(([k, v]) => [k, (v ?? '').trim()]));
}

needs('root')(
  'the keeper: _PID of each generation, without privileges, replaced when lost, gone at stop',
  async (t) => {
    const b = new Baton(['--listen', '127.0.0.1:0', '--drain', '100ms', '--', 'node', fixture]);
    try {
      const { pid: gen1 } = await b.event('active', 1);
      const keeper = keeperOf(b.pid)!;
      t.is(envVar(gen1, '_PID'), String(keeper));
      const s = status(keeper);
      t.deepEqual([s.CapPrm, s.CapEff, s.CapAmb, s.NoNewPrivs], [ZERO, ZERO, ZERO, '1']);
      t.log(`keeper VmRSS ${s.VmRSS}, baton VmRSS ${status(b.pid).VmRSS}`);
      process.kill(keeper, 'SIGKILL');
      await b.waitFor((e) => e.event === 'warning' && /the keeper pid \d+ killed by SIGKILL/.test(e.message ?? ''));
      const { pid: gen2 } = await b.upgradeTo(2).then(() => b.event('active', 2));
      t.not(keeperOf(b.pid), undefined);
      t.is(envVar(gen2, '_PID'), String(keeperOf(b.pid)), 'the next launch started another');
      await b.event('exit', 1);
      t.regex(await get(await b.port()), /generation=2/);
      const last = keeperOf(b.pid)!;
      await b.stop();
      await until('the keeper gone', () => (ended(last) ? true : undefined));
    } finally {
      await b.stop();
    }
  },
);

needs('root')('the keeper dies with a baton killed by SIGKILL', async (t) => {
  const b = new Baton(['--listen', '127.0.0.1:0', '--', 'node', fixture]);
  const { pid: gen1 } = await b.event('active', 1);
  const keeper = keeperOf(b.pid);
  t.truthy(keeper);
  b.signal('SIGKILL');
  await b.exited;
  try {
    await until('the keeper gone', () => (ended(keeper!) ? true : undefined), 5_000);
  } finally {
    process.kill(-gen1, 'SIGKILL');
  }
});
