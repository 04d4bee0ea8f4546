// node --import tsx test/bench/exec-window.ts [RUNS]: how long a self-upgrade's execve leaves baton without
// its signal handlers, over RUNS (20) SIGUSR2s of one baton, all read from /proc/PID/status (SigIgn, SigCgt):
//   lost:  from baton's SIG_IGN (set just before the execve) to the new Node's start resetting SIG_IGN:
//          a signal then is discarded;
//   fatal: from that reset to the new program's handlers (cli.ts, before it loads the rest): a signal then
//          kills baton (SIGTTIN/SIGTTOU stop it);
//   total: the two together, the execve to the handlers.
// Polled every ~0.2 ms by this process (which blocks meanwhile), so each figure is good to about 0.5 ms.
import { Baton, fixture } from '../helpers/baton.js';
import { watchExec } from '../helpers/dispositions.js';

const runs = Number(process.argv[2] ?? 20);
const baton = new Baton(['--listen', '127.0.0.1:0', '--', 'node', fixture]);
const rows: Array<{ lost: number; fatal: number; total: number }> = [];
try {
  await baton.event('active', 1);
  for (let i = 0; i < runs; i++) {
    const from = baton.events.length;
    baton.signal('SIGUSR2');
    const w = watchExec(baton.pid, ['SIGHUP', 'SIGTTIN', 'SIGTTOU', 'SIGUSR2'], 30_000);
    if (!w || w.reset === undefined) throw new Error(`run ${i + 1}: the execve was not seen`);
    rows.push({ lost: w.reset - w.lost, fatal: w.caught - w.reset, total: w.caught - w.lost });
    await baton.waitFor((e) => e.event === 'resumed', 30_000, from);
  }
} finally {
  await baton.stop();
}
const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const median = s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  return [s[0]!, median, s[s.length - 1]!].map((x) => x.toFixed(1)).join(' / ');
};
console.log(`${rows.length} self-upgrades, ms min / median / max`);
for (const k of ['lost', 'fatal', 'total'] as const) console.log(`  ${k.padEnd(6)} ${stats(rows.map((r) => r[k]))}`);
