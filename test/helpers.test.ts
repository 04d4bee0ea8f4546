// supervisor/helpers.ts with real shells: each run is a process group of its own, and whatever is left of
// it goes (SIGKILL to the group) on timeout, on abort, on stopAll and once the shell exits. The processes
// are looked at in /proc, never taken on the Helpers' word.
import test, { type ExecutionContext } from 'ava';
import { Helpers } from '../supervisor/helpers.js';
import type { Logger } from '../supervisor/log.js';
import { ended, lineage, pidsFile, recorded, until } from './helpers/procs.js';

type Event = [string, Record<string, unknown>];

function helpers(): Helpers & { events: Event[] } {
  const events: Event[] = [];
  const log: Logger = { event: (name, fields = {}) => void events.push([name, fields]) };
  return Object.assign(new Helpers(log), { events });
}

/** A shell that starts `sleep 300` in its group, writes "SHELL SLEEP" and waits for it. */
const hang = (file: string) => `sleep 300 & echo $$ $! >> ${file}; wait`;

/** Both processes run in a group of their own, led by the shell, which is this process's child. */
function ownGroup(t: ExecutionContext, [shell, sleeper]: number[]): void {
  t.deepEqual(lineage(shell!), { ppid: process.pid, pgid: shell });
  t.is(lineage(sleeper!)?.pgid, shell, 'the sleep is in the shell’s group');
  t.not(lineage(shell!)?.pgid, lineage(process.pid)?.pgid, 'not in this process’s group');
}

const allEnded = (pids: number[]) => () => (pids.every(ended) ? true : undefined);

test('a timeout kills the whole group, and the result says it timed out', async (t) => {
  const h = helpers();
  const p = pidsFile(t);
  const run = h.run('check', hang(p.file), { timeoutMs: 1000, output: true });
  p.pids.push(...(await recorded(p.file)));
  ownGroup(t, p.pids);
  const r = await run;
  t.like(r, { code: null, signal: 'SIGKILL', timedOut: true, stopped: false });
  await until('the shell and its sleep gone', allEnded(p.pids), 2000);
  t.deepEqual(h.list(), []);
});

test('an abort kills the whole group', async (t) => {
  const h = helpers();
  const p = pidsFile(t);
  const abort = new AbortController();
  const run = h.run('probe', hang(p.file), { signal: abort.signal, generation: 2 });
  p.pids.push(...(await recorded(p.file)));
  ownGroup(t, p.pids);
  abort.abort();
  t.like(await run, { code: null, signal: 'SIGKILL', timedOut: false });
  await until('the shell and its sleep gone', allEnded(p.pids), 2000);
});

test('list() shows what runs; stopAll() kills it, logs it, and no helper starts afterwards', async (t) => {
  const h = helpers();
  const p = pidsFile(t);
  const run = h.run('check', hang(p.file));
  p.pids.push(...(await recorded(p.file)));
  const [listed] = h.list();
  t.like(listed, { kind: 'check', pid: p.pids[0], command: hang(p.file) });
  t.true(listed!.ageMs >= 0);
  h.stopAll();
  t.like(await run, { signal: 'SIGKILL', stopped: true });
  await until('the shell and its sleep gone', allEnded(p.pids), 2000);
  t.deepEqual(h.events, [['kill', { message: `check pid ${p.pids[0]} (${hang(p.file)}): baton is stopping` }]]);
  const later = pidsFile(t);
  t.like(await h.run('probe', `echo $$ > ${later.file}`), { code: null, stopped: true });
  t.is(h.list().length, 0);
  await t.throwsAsync(recorded(later.file, 300), undefined, 'nothing ran');
});

test('what the shell leaves running in its group when it exits is killed', async (t) => {
  const h = helpers();
  const p = pidsFile(t);
  const r = await h.run('probe', `sleep 300 & echo $$ $! >> ${p.file}; exit 0`);
  p.pids.push(...(await recorded(p.file)));
  t.like(r, { code: 0, timedOut: false });
  await until('the sleep it left gone', allEnded(p.pids), 2000);
});

test('the output: the end of stdout and stderr, at most 8 KiB', async (t) => {
  const h = helpers();
  const r = await h.run(
    'check',
    'i=0; while [ $i -lt 2000 ]; do echo "line $i"; i=$((i+1)); done; echo last >&2; exit 4',
    {
      output: true,
    },
  );
  t.like(r, { code: 4, timedOut: false });
  t.true(r.output.length <= 8192);
  t.regex(r.output, /line 1999\nlast\n$/);
});

test('a command the shell cannot run is an exit 127 with the shell’s message', async (t) => {
  const r = await helpers().run('check', 'no-such-command-baton', { output: true });
  t.is(r.code, 127);
  t.regex(r.output, /no-such-command-baton/);
});
