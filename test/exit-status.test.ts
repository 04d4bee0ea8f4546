import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import { alive, Baton, cli, fixture } from './helpers/baton.js';
import { tail } from './helpers/procs.js';

// baton's exit status after a stop it was asked for: 0 for a clean stop (systemd and Docker count it a success),
// the child's own status otherwise (docs/cli.md, exit codes).

const listen = ['--listen', '127.0.0.1:0'];

/** How each way to ask baton for a stop is sent. */
const asks: Record<string, (b: Baton) => Promise<unknown>> = {
  SIGTERM: async (b) => b.signal('SIGTERM'),
  SIGINT: async (b) => b.signal('SIGINT'),
  'baton stop': (b) => promisify(execFile)(process.execPath, [cli, 'stop', '--control', b.control]),
};

/** Runs the fixture in `mode`, asks baton to stop, and checks its exit code and the `stopped` event. */
async function stopWith(t: ExecutionContext, mode: string, ask: string, code: number, message: RegExp, args = listen) {
  const baton = new Baton([...args, '--', 'node', fixture, mode]);
  try {
    const { pid } = await baton.event('active', 1);
    await asks[ask]!(baton);
    const exit = await baton.exited;
    t.false(alive(pid), 'the generation is gone');
    t.deepEqual(exit, { code, signal: null }, tail(baton));
    t.regex(String(baton.events.find((e) => e.event === 'stopped')?.message), message);
  } finally {
    await baton.stop();
  }
}

for (const ask of Object.keys(asks)) {
  test(`${ask}: a server that dies by baton's stop signal ends a clean stop, exit 0`, (t) =>
    // SIGINT reaches baton only: its generations get the stop signal, SIGTERM, all the same.
    stopWith(t, 'die-on-term', ask, 0, /^clean stop: every generation ended by the stop signal SIGTERM$/));
}

test('a server that exits 3 on the stop signal: baton exits 3', (t) =>
  stopWith(t, 'exit-on-term:3', 'SIGTERM', 3, /^generation 1 exited with code 3$/));

test("a server killed by baton's SIGKILL at the kill deadline ends a clean stop, exit 0", (t) =>
  stopWith(t, 'ignore-term', 'SIGTERM', 0, /^clean stop: every generation killed by baton's SIGKILL \(did not exit/, [
    ...listen,
    '--kill-timeout',
    '300ms',
  ]));

test('a SIGKILL that baton did not send (the OOM killer) during the stop: baton exits 137', async (t) => {
  const baton = new Baton([...listen, '--kill-timeout', '20s', '--', 'node', fixture, 'ignore-term']);
  try {
    const { pid } = await baton.event('active', 1);
    baton.signal('SIGTERM');
    await baton.event('stop', 1);
    process.kill(pid, 'SIGKILL'); // while it drains
    t.deepEqual(await baton.exited, { code: 137, signal: null }, tail(baton));
    t.is(baton.events.find((e) => e.event === 'stopped')?.message, 'generation 1 killed by SIGKILL');
  } finally {
    await baton.stop();
  }
});
