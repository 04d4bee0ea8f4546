// An HTTP server that answers with its pid and generation, using baton's child helper.
//
//   npx baton --listen 127.0.0.1:8080 --pid-file baton.pid -- node examples/http-server.mjs
//   curl 127.0.0.1:8080            # pid=... generation=1
//   kill -HUP $(cat baton.pid)     # generation 2 takes over; no connection is refused
//
// Without baton it listens on $PORT (default 8080) by itself.
import http from 'node:http';
import { serve } from 'baton/child';

const generation = process.env.BATON_GENERATION ?? '0';
const server = http.createServer((_req, res) => {
  res.end(`pid=${process.pid} generation=${generation}\n`);
});

await serve(server, { port: Number(process.env.PORT ?? 8080), host: '127.0.0.1' });
