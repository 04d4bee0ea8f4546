// Upgrade speed at scale: SIGHUP to all workers active, and to the old generation gone, as workers, listeners and
// idle keep-alive connections grow. No load: each figure is the upgrade's own, timed from this process.
import { Agent, get } from 'node:http';
import { availableParallelism } from 'node:os';
import { Baton, root } from '../helpers/baton.js';
import { median } from './stats.js';

export interface ScaleCase {
  name: string;
  workers: number | 'auto';
  listeners: number;
  /** Keep-alive connections opened (one request each, then idle) on the serving generation before each SIGHUP. */
  idle: number;
}

export interface ScaleResult extends ScaleCase {
  upgrades: number;
  /** Medians, ms: SIGHUP to the `upgraded` event, and to the exit of the old generation's last process. */
  toActiveMs: number;
  toOldGoneMs: number;
  /** The `upgraded` event's own_ms (median). */
  ownMs: number;
  /** Idle connections open when each SIGHUP was sent (the smallest count of the rounds). */
  idleOpen: number;
}

export const SCALE_CASES: ScaleCase[] = [
  { name: '1 worker, 1 listener', workers: 1, listeners: 1, idle: 0 },
  { name: '2 workers', workers: 2, listeners: 1, idle: 0 },
  { name: '--workers auto', workers: 'auto', listeners: 1, idle: 0 },
  { name: '8 listeners', workers: 1, listeners: 8, idle: 0 },
  { name: '1000 idle keep-alive connections', workers: 1, listeners: 1, idle: 1000 },
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `n` keep-alive connections, each with one answered request, left idle in the agent's pool. */
async function openIdle(port: number, n: number): Promise<Agent> {
  const agent = new Agent({ keepAlive: true, maxSockets: n, maxFreeSockets: n });
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const req = get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
        res.resume();
        res.once('end', resolve);
      });
      req.setTimeout(10_000, () => req.destroy(new Error('no answer within 10 s')));
      req.once('error', reject);
    });
  await Promise.all(Array.from({ length: n }, one));
  return agent;
}

const idleCount = (agent: Agent) => Object.values(agent.freeSockets).reduce((k, list) => k + (list?.length ?? 0), 0);

/** One case: baton started with `c`, `upgrades` SIGHUPs one after the other, each timed to active and to old gone. */
export async function scaleCase(c: ScaleCase, upgrades: number): Promise<ScaleResult> {
  const workers = c.workers === 'auto' ? availableParallelism() : c.workers;
  const listen = Array.from({ length: c.listeners }, () => ['--listen', '127.0.0.1:0']).flat();
  const args = ['--drain', '0', '--workers', String(c.workers), ...listen];
  const b = new Baton([...args, '--', process.execPath, `${root}examples/http-server.mjs`]);
  const toActive: number[] = [];
  const toOldGone: number[] = [];
  const own: number[] = [];
  let idleOpen = c.idle;
  try {
    await b.waitFor((e) => e.event === 'active' && e.generation === 1 && e.worker === workers - 1, 30_000);
    const port = await b.port();
    for (let g = 2; g <= upgrades + 1; g++) {
      const agent = c.idle ? await openIdle(port, c.idle) : undefined;
      if (agent) idleOpen = Math.min(idleOpen, idleCount(agent));
      const from = b.events.length;
      const t0 = performance.now();
      b.signal('SIGHUP');
      const upgraded = await b.waitFor((e) => e.event === 'upgraded' && e.generation === g, 30_000, from);
      toActive.push(performance.now() - t0);
      own.push(Number(upgraded.own_ms));
      const exits = () => b.events.slice(from).filter((e) => e.event === 'exit' && e.generation === g - 1).length;
      await b.waitFor(() => exits() >= workers, 60_000, from);
      toOldGone.push(performance.now() - t0);
      agent?.destroy();
      await sleep(300);
    }
  } finally {
    await b.stop();
  }
  return {
    ...c,
    upgrades,
    toActiveMs: median(toActive),
    toOldGoneMs: median(toOldGone),
    ownMs: median(own),
    idleOpen,
  };
}
