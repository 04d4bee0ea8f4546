// node --import tsx alternate.ts JSON: one warm client that alternates its load between two servers in short
// slices (ABBA), for the steady state's ratio. Prints {"pairs": [[a, b], ...]}, a and b being Slices.
//
// A load generator started afresh for each round spends its first second compiling its own code, and a slow
// spell of the shared machine lasts longer than a 1.5 s round: both moved a round's rate by up to 20% here. One
// process whose code is warm, switching servers every 200 ms, puts both sides of a pair in the same moment.
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';

export interface AlternateOptions {
  /** The two servers: where they listen and the pid that serves (whose CPU is read). */
  targets: [Target, Target];
  keepAlive: boolean;
  /** Parallel request loops. */
  concurrency: number;
  /** Each server's warm-up, before the pairs: its own load in slices of sliceMs. */
  warmMs: number;
  sliceMs: number;
  pairs: number;
}
interface Target {
  port: number;
  pid: number;
}

/** One slice of load on one server. */
export interface Slice {
  rps: number;
  failed: number;
  /** CPU (ns, from schedstat, every thread) the server used over the requests answered in the slice, in µs each. */
  usPerRequest: number;
}

/** A request's bound: a server that hangs fails the request, not the benchmark. */
const REQUEST_TIMEOUT_MS = 10_000;

/** CPU time (ns) every thread of `pid` has run so far, from their schedstat. */
export function runNs(pid: number): number {
  const tasks = readdirSync(`/proc/${pid}/task`);
  return tasks.reduce(
    (ns, t) => ns + Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]),
    0,
  );
}

function request(port: number, agent: http.Agent, keepAlive: boolean): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get(
      { host: '127.0.0.1', port, path: '/', agent, headers: keepAlive ? {} : { connection: 'close' } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode === 200));
        res.on('error', () => resolve(false));
      },
    );
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(false));
  });
}

/** `o.concurrency` loops on one target until `ms` have passed; each loop's request in flight then ends the slice. */
async function slice(o: AlternateOptions, agents: http.Agent[], i: number, ms: number): Promise<Slice> {
  const { port, pid } = o.targets[i]!;
  const cpu = runNs(pid);
  const t0 = performance.now();
  const end = t0 + ms;
  let [ok, failed] = [0, 0];
  const loop = async () => {
    while (performance.now() < end) (await request(port, agents[i]!, o.keepAlive)) ? ok++ : failed++;
  };
  await Promise.all(Array.from({ length: o.concurrency }, loop));
  const elapsed = performance.now() - t0;
  return { rps: ok / (elapsed / 1000), failed, usPerRequest: ok ? (runNs(pid) - cpu) / 1000 / ok : NaN };
}

export async function alternate(o: AlternateOptions): Promise<Array<[Slice, Slice]>> {
  const agents = o.targets.map(() => new http.Agent({ keepAlive: o.keepAlive, maxSockets: o.concurrency }));
  try {
    for (let t = 0; t < o.warmMs; t += o.sliceMs) {
      for (const i of [0, 1]) await slice(o, agents, i, o.sliceMs);
    }
    const out: Array<[Slice, Slice]> = [];
    for (let p = 0; p < o.pairs; p++) {
      const first = p % 2;
      const a = await slice(o, agents, first, o.sliceMs);
      const b = await slice(o, agents, 1 - first, o.sliceMs);
      out.push(first ? [b, a] : [a, b]);
    }
    return out;
  } finally {
    for (const a of agents) a.destroy();
  }
}

if (process.argv[1]?.endsWith('alternate.ts')) {
  const pairs = await alternate(JSON.parse(process.argv[2]!) as AlternateOptions);
  process.stdout.write(`${JSON.stringify({ pairs })}\n`);
}
