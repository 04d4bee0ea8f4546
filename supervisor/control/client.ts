import net from 'node:net';
import { BatonError } from '../errors.js';
import type { Reply, Request } from './server.js';

/** One request to a baton's control socket; resolves with its reply. */
export function request(path: string, req: Request, timeoutMs: number): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(path);
    let data = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new BatonError(
          'ERR_BATON_TIMEOUT',
          `no answer from ${path} within ${timeoutMs}ms`,
          req.wait
            ? 'the upgrade may still be running: see baton status'
            : 'baton does not answer: is it stopped (SIGSTOP) or stalled? see its log',
        ),
      );
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(JSON.stringify(req) + '\n'));
    socket.on('data', (d: string) => (data += d));
    socket.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(data) as Reply);
      } catch {
        reject(new BatonError('ERR_BATON_REQUEST', `malformed reply from ${path}`, 'is this a baton control socket?'));
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const gone = err.code === 'ENOENT' || err.code === 'ECONNREFUSED';
      reject(
        new BatonError(
          'ERR_BATON_NOT_RUNNING',
          gone ? `no baton is running at ${path}` : `cannot reach ${path}: ${err.code ?? err.message}`,
          gone ? 'start baton, or check --control / --pid-file' : 'run as root or as the user baton runs as',
        ),
      );
    });
  });
}
