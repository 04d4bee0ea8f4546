// baton's option parser (yargs) never stays loaded in the daemon (issue 13): the program that reads the command
// line execs the daemon in place (same pid) with what it read; with --config an upgrade reads the options in a
// process of its own; a self-upgrade's new program gets them from its check. Observed with a loader hook that
// records every process that resolves yargs, and on the processes themselves.
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { PARSED_ENV, takeParsed } from '../supervisor/cli/parsed.js';
import { startTime } from '../supervisor/sys/proc.js';
import { Baton, fixture, root } from './helpers/baton.js';
import { readOr } from './helpers/procs.js';

const preload = `--import ${join(root, 'test/fixtures/trace-parser.mjs')}`;
const DAEMON = ['--lite-mode', '--no-expose-wasm', '--expose-gc'];
/** The node flags among a process's arguments (up to the script), less a self-upgrade's preload. */
const flags = (pid: number) => {
  const argv = readOr(`/proc/${pid}/cmdline`).split('\0');
  return argv.slice(1, argv.indexOf('--')).filter((a) => a.startsWith('--') && a !== '--require');
};

function writeConfig(path: string, options: Record<string, unknown>): void {
  writeFileSync(`${path}.new`, JSON.stringify(options));
  renameSync(`${path}.new`, path);
}

/** A baton with --config, every process traced; `env` added. */
function traced(env: NodeJS.ProcessEnv = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'baton-parsed-'));
  const [config, trace] = [join(dir, 'baton.json'), join(dir, 'yargs.log')];
  writeConfig(config, { listen: ['127.0.0.1:0'], drain: '100ms', command: ['node', fixture] });
  // An optional --env-file that is missing: the process that reads the options must not take it for its own.
  const args = ['--config', config, `--env-file=-${join(dir, 'missing.env')}`];
  const baton = new Baton(args, { NODE_OPTIONS: preload, TRACE_PARSER: trace, ...env });
  const loads = () => readOr(trace).split('\n').filter(Boolean).map(Number);
  return { baton, config, loads };
}

test.serial(
  'the daemon never loads yargs: not at start, not to read --config again, not after a self-upgrade',
  async (t) => {
    const { baton, config, loads } = traced();
    try {
      await baton.event('active', 1);
      const started = startTime(baton.pid);
      t.deepEqual(loads(), [baton.pid], 'read once, by the program the daemon replaced in place');
      t.deepEqual(flags(baton.pid), DAEMON, "the daemon runs with V8's flags for it");
      writeConfig(config, { listen: ['127.0.0.1:0'], drain: '200ms', command: ['node', fixture] });
      await baton.upgradeTo(2);
      t.like(
        baton.events.find((e) => e.event === 'config-changed'),
        { message: '--drain from 100ms to 200ms' },
      );
      const readers = loads().filter((pid) => pid !== baton.pid);
      t.is(readers.length, 1, 'the upgrade read the file in a process of its own');
      const from = baton.events.length;
      baton.signal('SIGUSR2');
      await baton.waitFor((e) => e.event === 'resumed', 30_000, from);
      t.is(startTime(baton.pid), started, 'the same baton process');
      t.deepEqual(flags(baton.pid), DAEMON, 'the new program too, each once');
      await baton.upgradeTo(3);
      const generation = baton.events.find((e) => e.event === 'active' && e.generation === 3)!;
      const environ = readOr(`/proc/${generation.pid}/environ`);
      t.false(/(^|\0)BATON_(PARSED|READ)_OPTIONS=/.test(environ), 'no generation sees them');
      t.true(environ.includes('TRACE_PARSER='), 'what baton was given, it sees');
      t.deepEqual(
        loads().filter((pid) => pid === baton.pid),
        [baton.pid],
        'the new program took what its check read, and read --config again elsewhere',
      );
      const others = new Set(loads().filter((pid) => pid !== baton.pid));
      t.is(others.size, 3, 'the first upgrade, the self-upgrade check, the second upgrade: each a process of its own');
    } finally {
      t.is((await baton.stop()).code, 0);
    }
  },
);

test.serial('a read of --config that fails refuses the upgrade; the generation serving goes on', async (t) => {
  const { baton } = traced({ READER_FAILS: '1' });
  try {
    const first = await baton.event('active', 1);
    baton.signal('SIGHUP');
    const refused = await baton.waitFor((e) => e.event === 'upgrade-refused', 30_000, 0);
    t.regex(String(refused.message), /^--config not applied: the options could not be read: .* \(exit code 3\)/);
    t.is(refused.serving, 1);
    t.notThrows(() => process.kill(first.pid, 0), 'generation 1 still runs');
  } finally {
    t.is((await baton.stop()).code, 0);
  }
});

test('options read from other arguments are not taken, and never reach a child', (t) => {
  const argv = { _: [], drain: '1s' } as never;
  process.env[PARSED_ENV] = JSON.stringify({ args: ['--drain', '1s'], argv });
  t.is(takeParsed(['--drain', '2s']), undefined);
  t.false(PARSED_ENV in process.env);
  process.env[PARSED_ENV] = JSON.stringify({ args: ['--drain', '1s'], argv });
  t.deepEqual(takeParsed(['--drain', '1s']), argv);
  t.false(PARSED_ENV in process.env);
  process.env[PARSED_ENV] = '{not json';
  t.is(takeParsed([]), undefined);
});
