// Under Yama ptrace_scope 1 only the one process a source names may pull from it (issue 10, point 4).
// The machines the tests run on have no Yama, so the naming is recorded through the seam every source
// has (Source.nameTracer) while real children of concurrent launches pull a real listener.
import { spawn } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import test from 'ava';
import type { Source } from '../supervisor/handover/handover.js';
import { pidfd } from '../supervisor/handover/pidfd.js';
import type { Listener } from '../supervisor/listener.js';
import { closeFd } from '../supervisor/sys/fd.js';
import { createListener } from '../supervisor/sys/socket.js';
import { fixture } from './helpers/baton.js';
import { ended, fdsOn, killAll, until } from './helpers/procs.js';

test(
  'concurrent launches take turns: one child named at a time, ' + 'in spawn order, until it grabbed or ended',
  async (t) => {
    const address = { kind: 'tcp', family: 4, host: '127.0.0.1', port: 0, v6only: false } as const;
    const { fd } = createListener(address, 64, {});
    const listeners = [{ fd, address } as Listener];
    const socket = readlinkSync(`/proc/self/fd/${fd}`);
    const holds = (pid: number) => fdsOn(pid, socket) > 0;
    // Each name, with which children hold the listener (in the kernel's fd tables) and which have ended then.
    const named: Array<{ pid: number; holding: boolean[]; gone: boolean[] }> = [];
    let pids: number[] = [];
    const source: Source = {
      pid: process.pid,
      fds: [fd],
      ready: () => Promise.resolve(),
      nameTracer: (pid) => void named.push({ pid, holding: pids.map(holds), gone: pids.map(ended) }),
    };
    // The first and third exit before they take the listener; the second and fourth take it late, each 1.5 s
    // apart: four node starts at once on a loaded machine end hundreds of ms apart.
    const modes = ['exit-before-ready', 'slow:1500', 'exit-before-ready', 'slow:3000'];
    const env = { ...process.env, _PID: String(process.pid), _FD: String(fd) };
    const kids = modes.map((mode) => spawn(process.execPath, [fixture, mode], { env, stdio: 'ignore' }));
    pids = kids.map((k) => k.pid!);
    const exited = kids.map((k) => new Promise<void>((r) => k.once('exit', () => r())));
    const aborts = kids.map(() => new AbortController());
    try {
      const plan = pidfd.plan(['node'], listeners, source);
      const sessions = pids.map((pid, i) => pidfd.begin(pid, plan, listeners, aborts[i]!.signal, source));
      t.deepEqual(
        named.map((n) => n.pid),
        [pids[0]],
        'the first child is named as it is spawned, before it can ask',
      );
      // A launch ends when its child exits (launch() calls end() then).
      for (const [i, e] of exited.entries()) void e.then(() => sessions[i]!.end!());
      await Promise.all([1, 3].map((i) => sessions[i]!.watch));
      await until('the name cleared', () => (named.at(-1)?.pid === 0 ? true : undefined), 5_000);
      t.deepEqual(
        named.map((n) => n.pid),
        [pids[0], pids[1], pids[3], 0],
        'in spawn order; the third ended before its turn and is never named',
      );
      t.true(named[1]!.gone[0], 'the second is named once the first has exited');
      t.deepEqual(named[2]!.holding, [false, true, false, false], 'the fourth once the second holds the listener');
      t.deepEqual(named[3]!.holding, [false, true, false, true], 'nobody once the fourth holds it too');
    } finally {
      for (const a of aborts) a.abort(); // what launch() does once it is over: the watches stop
      killAll(pids);
      closeFd(fd);
    }
  },
);
