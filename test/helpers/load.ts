import http from 'node:http';
import net from 'node:net';

export interface LoadResult {
  ok: number;
  failures: Record<string, number>;
  failed: number;
  /** Responses per generation, from the `generation=N` in each body. */
  generations: Map<number, number>;
  /** Responses per worker slot, from `worker=N` in each body. */
  workers: Map<number, number>;
  /**
   * Unless `record: false`: [ms since start, latency ms, outcome ('ok', 'ECONNRESET', 'status 503', ...),
   * generation].
   */
  samples?: Array<[number, number, string, number]>;
  /** ms from the start of the load to its end. */
  elapsed: number;
}

export interface LoadOptions {
  port: number;
  host?: string;
  socketPath?: string;
  keepAlive: boolean;
  /** Parallel request loops. */
  concurrency?: number;
  /** Hard bounds: the loop stops at whichever comes first, or at stop(). */
  maxRequests?: number;
  maxMs?: number;
  /** Keep every request's time, latency and outcome in `samples` (default true). */
  record?: boolean;
}

/**
 * Hammers an HTTP server with no retries, counting every outcome. New connection per request
 * (Connection: close) or keep-alive connections.
 */
export function hammer(o: LoadOptions): {
  stop: () => Promise<LoadResult>;
  result: Promise<LoadResult>;
  live: LoadResult;
  answered: (generation: number, timeoutMs?: number) => Promise<boolean>;
} {
  const agent = new http.Agent({ keepAlive: o.keepAlive, maxSockets: o.concurrency ?? 4 });
  const r: LoadResult = {
    ok: 0,
    failures: {},
    failed: 0,
    generations: new Map(),
    workers: new Map(),
    elapsed: 0,
    ...(o.record === false ? {} : { samples: [] }),
  };
  const start = performance.now();
  const maxRequests = o.maxRequests ?? 50_000;
  const deadline = Date.now() + (o.maxMs ?? 60_000);
  let stopped = false;
  let sent = 0;
  const fail = (kind: string, began: number) => {
    r.failed++;
    r.failures[kind] = (r.failures[kind] ?? 0) + 1;
    r.samples?.push([Math.round(began - start), performance.now() - began, kind, 0]);
  };
  const one = () =>
    new Promise<void>((resolve) => {
      const began = performance.now();
      const req = http.get(
        {
          ...(o.socketPath ? { socketPath: o.socketPath } : { host: o.host ?? '127.0.0.1', port: o.port }),
          path: '/',
          agent,
          headers: o.keepAlive ? {} : { connection: 'close' },
          timeout: 10_000,
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d) => (body += d));
          res.on('end', () => {
            if (res.statusCode === 200) {
              r.ok++;
              const g = Number(/generation=(\d+)/.exec(body)?.[1] ?? 0);
              const w = Number(/worker=(\d+)/.exec(body)?.[1] ?? 0);
              r.generations.set(g, (r.generations.get(g) ?? 0) + 1);
              r.workers.set(w, (r.workers.get(w) ?? 0) + 1);
              r.samples?.push([Math.round(began - start), performance.now() - began, 'ok', g]);
            } else fail(`status ${res.statusCode}`, began);
            resolve();
          });
          res.on('error', (e: NodeJS.ErrnoException) => {
            fail(e.code ?? e.message, began);
            resolve();
          });
        },
      );
      req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
      req.on('error', (e: NodeJS.ErrnoException) => {
        fail(e.code ?? e.message, began);
        resolve();
      });
    });
  const loop = async () => {
    while (!stopped && sent < maxRequests && Date.now() < deadline) {
      sent++;
      await one();
    }
  };
  const result = Promise.all(Array.from({ length: o.concurrency ?? 4 }, loop)).then(() => {
    agent.destroy();
    r.elapsed = performance.now() - start;
    return r;
  });
  return {
    result,
    live: r,
    /** Resolves once `generation` has answered a request (false after the timeout). */
    answered: async (generation, timeoutMs = 10_000) => {
      const deadline = Date.now() + timeoutMs;
      while (!r.generations.has(generation) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
      return r.generations.has(generation);
    },
    stop: () => {
      stopped = true;
      return result;
    },
  };
}

/** One GET; the body. */
export function get(port: number, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host, port, path: '/', agent: false, timeout: 5000 }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

/** A loopback port free at the time of asking. */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** The bounds a zero-downtime test holds the load to. */
export const GAP_MS = 500;
export const SLOW_MS = 1000;

/**
 * Everything in `r` that breaks "zero downtime": failed requests, a window of GAP_MS or more in which
 * no request completed (a shared accept queue turns a stall into latency, not failures), and requests
 * that took SLOW_MS or more. Empty when the load was served without a gap.
 */
export function gaps(r: LoadResult, gapMs = GAP_MS, slowMs = SLOW_MS): string[] {
  if (!r.samples) throw new Error('gaps() needs a load with record');
  const problems: string[] = [];
  if (r.failed > 0) problems.push(`${r.failed} failed: ${JSON.stringify(r.failures)}`);
  const done = r.samples
    .filter((s) => s[2] === 'ok')
    .map((s) => s[0] + s[1])
    .sort((a, b) => a - b);
  let last = 0;
  for (const at of [...done, r.elapsed]) {
    if (at - last >= gapMs) problems.push(`no request completed from ${Math.round(last)} to ${Math.round(at)} ms`);
    last = at;
  }
  const slow = r.samples.filter((s) => s[1] >= slowMs);
  if (slow.length > 0)
    problems.push(
      `${slow.length} requests took ${slowMs} ms or more, the slowest ` +
        `${Math.round(Math.max(...slow.map((s) => s[1])))} ms at ${slow[0]![0]} ms`,
    );
  return problems;
}

/** The generations that answered the requests sent from `fromMs` (ms since the load began) on. */
export function servedFrom(r: LoadResult, fromMs: number): number[] {
  return [...new Set(r.samples!.filter((s) => s[0] >= fromMs).map((s) => s[3]))].sort((a, b) => a - b);
}

/** Every one of `n` new connections is answered by `generation`. */

export async function servedBy(port: number, generation: number, n = 20): Promise<string[]> {
  const others: string[] = [];
  for (let i = 0; i < n; i++) {
    const body = await get(port);
    if (!body.includes(`generation=${generation} `)) others.push(body.trim());
  }
  return others;
}
