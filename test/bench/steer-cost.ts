// Runs inside a network namespace of the benchmark's: what steering costs.
// Prints {"loadAttachMs", "switchUs", "direct", "steered", "pairs", "switches", "rounds", "conns", "concurrency"}:
// switchUs the median of `switches` slot updates; direct and steered the median connections per second of
// `rounds` rounds of `conns` connections, `concurrency` at a time, alternating which of the two goes first;
// pairs: steered over direct in each round (the two run back to back).
import { spawn } from 'node:child_process';
import net from 'node:net';
import { parseRules } from '../../supervisor/steering/rules.js';
import { Steering } from '../../supervisor/steering/steering.js';
import { createListener } from '../../supervisor/sys/socket.js';
import { median } from './stats.js';

const [name, connsArg] = process.argv.slice(2);
const CONNS = Number(connsArg ?? 3000);
const CONCURRENCY = 16;
const SWITCHES = 1000;
const ROUNDS = 16;

const t0 = performance.now();
const steering = Steering.open(name!, process.env.BATON_BPFFS ?? '/sys/fs/bpf', parseRules(['127.0.0.1:9001']));
const loadAttachMs = performance.now() - t0;
const { fd } = createListener({ kind: 'tcp', family: 4, host: '127.0.0.1', port: 9000, v6only: false }, 4096, {});
const switches: number[] = [];
for (let i = 0; i < SWITCHES; i++) {
  const s = performance.now();
  steering.setSlot(fd);
  switches.push((performance.now() - s) * 1000);
}
// The acceptor is another process, as a server would be.
const acceptor = "require('net').createServer((c) => c.end()).listen({ fd: 3 }, () => console.log('up'))";
const server = spawn(process.execPath, ['-e', acceptor], { stdio: ['ignore', 'pipe', 'inherit', fd] });
await new Promise((r) => server.stdout!.once('data', r));

async function rate(port: number): Promise<number> {
  let left = CONNS;
  const start = performance.now();
  const loop = async () => {
    while (left-- > 0) {
      await new Promise<void>((resolve, reject) => {
        const c = net.connect(port, '127.0.0.1');
        c.on('end', () => {
          c.destroy();
          resolve();
        }).on('error', reject);
        c.resume();
      });
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, loop));
  return CONNS / ((performance.now() - start) / 1000);
}

const direct: number[] = [];
const steered: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  // ABBA: neither always runs first
  if (round % 2) {
    steered.push(await rate(9001));
    direct.push(await rate(9000));
  } else {
    direct.push(await rate(9000));
    steered.push(await rate(9001));
  }
}
server.kill();
steering.close(false);
const out = {
  loadAttachMs,
  switchUs: median(switches),
  direct: median(direct),
  steered: median(steered),
  pairs: steered.map((x, i) => x / direct[i]!),
  switches: SWITCHES,
  rounds: ROUNDS,
  conns: CONNS,
  concurrency: CONCURRENCY,
};
process.stdout.write(JSON.stringify(out) + '\n');
