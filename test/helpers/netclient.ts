// Runs inside a test's network namespace (tests cannot enter one themselves):
//   netclient.ts echo HOST:PORT...     one echo round trip each; prints {"HOST:PORT": "ok" | error code}
//   netclient.ts hammer PORT KEEPALIVE MAXMS   load until SIGTERM or MAXMS; prints the LoadResult
//   netclient.ts load JSON                      the same with LoadOptions as JSON (the benchmark's client)
// A LoadResult is printed as one JSON line: its Maps as objects, its samples and elapsed as they are, and
// `origin`, the wall-clock time (ms since the epoch) its sample times count from, to set them against
// events the test observed itself.
import net from 'node:net';
import { hammer, type LoadOptions } from './load.js';

const [mode, ...rest] = process.argv.slice(2);

function echo(target: string): Promise<string> {
  const i = target.lastIndexOf(':');
  const host = target.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(target.slice(i + 1));
  return new Promise((resolve) => {
    const s = net.connect({ host, port, timeout: 3000 }, () => s.end('ping'));
    let got = '';
    s.on('data', (d) => (got += d));
    s.on('end', () => resolve(got === 'ping' ? 'ok' : `got ${JSON.stringify(got)}`));
    s.on('timeout', () => s.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

if (mode === 'echo') {
  const out: Record<string, string> = {};
  for (const t of rest) out[t] = await echo(t);
  process.stdout.write(JSON.stringify(out));
} else if (mode === 'hammer' || mode === 'load') {
  const [port, keepAlive, maxMs] = rest;
  const options: LoadOptions =
    mode === 'load'
      ? (JSON.parse(rest[0]!) as LoadOptions)
      : { port: Number(port), keepAlive: keepAlive === 'true', concurrency: 4, maxMs: Number(maxMs) };
  const origin = performance.timeOrigin + performance.now();
  const load = hammer(options);
  process.once('SIGTERM', () => void load.stop());
  process.stdout.write('started\n');
  const r = await load.result;
  const json = { ...r, generations: Object.fromEntries(r.generations), workers: Object.fromEntries(r.workers), origin };
  process.stdout.write(JSON.stringify(json) + '\n');
}
