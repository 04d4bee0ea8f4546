// The seed's echo server: every byte a client sends comes back.
//
//   npx baton --listen 127.0.0.1:7777 --pid-file baton.pid -- node examples/tcp-echo.mjs
//   echo hello | nc -q1 127.0.0.1 7777
//   kill -HUP $(cat baton.pid)
import net from 'node:net';
import { serve } from 'baton/child';

const server = net.createServer((socket) => socket.pipe(socket));
await serve(server, { port: Number(process.env.PORT ?? 7777), host: '127.0.0.1' });
