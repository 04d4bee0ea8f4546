import net from 'node:net';
import { dirname } from 'node:path';
import { BatonError } from '../errors.js';
import { peerCredentials } from '../sys/socket.js';
import type { Step } from './progress.js';
import type { Reply, Request } from './server.js';

/**
 * Refuses a server that is neither root nor this user (SO_PEERCRED): whoever could put a socket at the path
 * would otherwise get the request and have its answer believed (a `reload --wait` reported done, a `stop`).
 */
function checkPeer(path: string, socket: net.Socket): void {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;
  const peer = peerCredentials(fd);
  const me = process.geteuid?.() ?? 0;
  if (peer.uid === 0 || peer.uid === me) return;
  throw new BatonError(
    'ERR_BATON_CONTROL_PEER',
    `${path} is served by pid ${peer.pid} of uid ${peer.uid}, neither root nor you (uid ${me}): not a baton of yours`,
    `if it is uid ${peer.uid}'s baton, ask as that user; else someone put a socket in ${dirname(path)}: ` +
      'give the --control path of your baton, in a directory of yours',
  );
}

/** One request to a baton's control socket; resolves with its reply. `onStep`: each progress line before it. */
export function request(path: string, req: Request, timeoutMs: number, onStep?: (s: Step) => void): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(path);
    let data = '';
    // Progress lines come before the reply, one JSON object a line; the reply is the last line.
    const steps = () => {
      for (let nl = data.indexOf('\n'); nl >= 0; nl = data.indexOf('\n')) {
        const line = data.slice(0, nl);
        let step: Step | undefined;
        try {
          step = (JSON.parse(line) as { progress?: Step }).progress;
        } catch {
          return; // not a progress line: the reply, which 'end' parses
        }
        if (!step) return;
        data = data.slice(nl + 1);
        onStep?.(step);
      }
    };
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
    socket.on('connect', () => {
      try {
        checkPeer(path, socket); // before the request goes out: a `stop` is nobody else's business
      } catch (err) {
        clearTimeout(timer);
        socket.destroy();
        return reject(err);
      }
      socket.write(JSON.stringify(req) + '\n');
    });
    socket.on('data', (d: string) => {
      data += d;
      steps();
    });
    socket.on('end', () => {
      clearTimeout(timer);
      steps();
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
