// The benchmark's servers besides examples/http-server.mjs: node server.mjs KIND
//   naive   takes the listener (baton's helper) or binds $PORT, exits at once on SIGTERM
//   slow    waits 1.5 s before it listens, answers each request after 200 ms, drains on SIGTERM
//   cpu     spends 2 ms of CPU on each request, drains on SIGTERM (the workers benchmark)
//   bad     drains on SIGTERM; a process started while the file $BENCH_BAD exists is the bad release: it exits 1
//           one second after it listens. Its body says generation=2, the good release's generation=1, whatever
//           the supervisor (the bad-release benchmark)
import { existsSync } from 'node:fs';
import http from 'node:http';
import { drainOnStop, listen, ready } from 'baton/child';

const kind = process.argv[2] ?? 'naive';
const bad = kind === 'bad' && existsSync(process.env.BENCH_BAD ?? '');
const generation = kind === 'bad' ? (bad ? '2' : '1') : (process.env.BATON_GENERATION ?? '0');
const worker = process.env.BATON_WORKER ?? process.env.NODE_APP_INSTANCE ?? '0';
const body = `pid=${process.pid} generation=${generation} worker=${worker}\n`;

function spin(ms) {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

const server = http.createServer((_req, res) => {
  if (kind === 'slow') setTimeout(() => res.end(body), 200);
  else {
    if (kind === 'cpu') spin(2);
    res.end(body);
  }
});

if (kind === 'slow') await new Promise((r) => setTimeout(r, 1500));
if (kind === 'naive') process.on('SIGTERM', () => process.exit(0));
else drainOnStop(server, { grace: 2000 });
await listen(server, { port: Number(process.env.PORT ?? 8080), host: '127.0.0.1' });
await ready();
if (bad) setTimeout(() => process.exit(1), 1000);
