import { lstatSync, mkdirSync, rmdirSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { dirname } from 'node:path';
import { MAX_DURATION } from '../duration.js';
import type { ErrorCode } from '../error-codes.js';
import { alreadyRunning, BatonError } from '../errors.js';
import { checkDirectory } from '../files.js';
import type { Logger } from '../log.js';
import { peerCredentials, unixSocketOwner } from '../sys/socket.js';
import { runtimeBase } from './path.js';

export interface Request {
  command: 'reload' | 'status' | 'stop';
  wait?: boolean;
  timeout?: number;
}

export type Reply =
  | { ok: true; [k: string]: unknown }
  | { ok: false; error: { code: ErrorCode; message: string; hint?: string }; [k: string]: unknown };

export type Handler = (req: Request) => Promise<Reply>;

const COMMANDS = new Set(['reload', 'status', 'stop']);

function lstatOrUndefined(path: string) {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}
const MAX_REQUEST = 64 * 1024;

function parse(line: string): Request | string {
  let req: unknown;
  try {
    req = JSON.parse(line);
  } catch {
    return 'the request is not JSON';
  }
  if (typeof req !== 'object' || req === null || !COMMANDS.has((req as Request).command))
    return 'the request needs "command": "reload", "status" or "stop"';
  const r = req as Request;
  const { timeout } = r;
  if (timeout !== undefined && !(typeof timeout === 'number' && timeout > 0 && timeout <= MAX_DURATION)) {
    return `"timeout" must be a positive number of ms, at most ${MAX_DURATION}`;
  }
  return r;
}

/**
 * The control socket: a unix stream socket, mode 0600, one JSON request line and one JSON reply
 * line per connection. Only root and baton's own uid may ask (SO_PEERCRED).
 */
export class ControlServer {
  readonly path: string;
  private readonly server: net.Server;

  /** The directories open() created for the socket, deepest first: removed again on close if empty. */
  private readonly made: string[];

  private constructor(path: string, server: net.Server, made: string | undefined) {
    this.path = path;
    this.server = server;
    this.made = [];
    // The shared directory of every baton's default socket stays: another baton may be starting in it.
    for (let d = dirname(path); made && d.startsWith(made) && d !== runtimeBase(); d = dirname(d)) this.made.push(d);
  }

  static async open(path: string, handler: Handler, log: Logger): Promise<ControlServer> {
    let made: string | undefined;
    try {
      made = mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    } catch {
      // checkDirectory says why it cannot be used
    }
    checkDirectory(dirname(path), 'control socket');
    const existing = lstatOrUndefined(path);
    if (existing && !existing.isSocket()) {
      const hint = 'remove it, or choose another --control path';
      throw new BatonError('ERR_BATON_CONTROL', `${path} exists and is not a socket`, hint);
    }
    if (existing) {
      const owner = unixSocketOwner(path);
      if (owner !== undefined) {
        const otherwise = 'give this one another --control, --pid-file or --name';
        throw alreadyRunning(`control socket ${path} belongs to a running baton`, owner, otherwise);
      }
      unlinkSync(path);
      log.event('stale-control', { message: `removed stale control socket ${path}` });
    }
    const server = net.createServer((socket) => serve(socket, handler, log));
    const umask = process.umask(0o177); // the socket is created 0600, with no window where it is wider
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => {
          server.off('error', reject);
          resolve();
        });
      });
      // From now on an error is one failed accept (EMFILE, ENOBUFS): the server goes on listening.
      // Unhandled, the second one would take baton down with it.
      server.on('error', (err: NodeJS.ErrnoException) => {
        log.event('warning', { message: `control socket: ${err.code ?? err.message}` });
      });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new BatonError(
        'ERR_BATON_CONTROL',
        `cannot listen on control socket ${path}: ${e.code ?? e.message}`,
        'choose a writable --control path',
      );
    } finally {
      process.umask(umask);
    }
    return new ControlServer(path, server, made);
  }

  close(): void {
    this.server.close();
    try {
      unlinkSync(this.path);
    } catch {
      // libuv removes it when it closes the server
    }
    try {
      for (const d of this.made) rmdirSync(d);
    } catch {
      // not empty
    }
  }
}

const IDLE_MS = 30_000;

function serve(socket: net.Socket, handler: Handler, log: Logger): void {
  socket.on('error', () => {}); // a peer that goes away is not baton's problem
  socket.setTimeout(IDLE_MS, () => socket.destroy());
  const reply = (r: Reply) => socket.end(JSON.stringify(r) + '\n');
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;
  let peer: { pid: number; uid: number };
  try {
    peer = peerCredentials(fd);
  } catch {
    socket.destroy();
    return;
  }
  const me = process.getuid?.() ?? 0;
  if (peer.uid !== 0 && peer.uid !== me) {
    log.event('control-refused', { message: `request from uid ${peer.uid} (pid ${peer.pid}) refused`, uid: peer.uid });
    reply({
      ok: false,
      error: {
        code: 'ERR_BATON_FORBIDDEN',
        message: `uid ${peer.uid} may not control this baton`,
        hint: `ask as root or as uid ${me}`,
      },
    });
    return;
  }
  let buffer = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    const nl = buffer.indexOf('\n');
    if (nl < 0 && buffer.length <= MAX_REQUEST) return;
    socket.removeAllListeners('data');
    const tooLarge = nl < 0 || nl > MAX_REQUEST; // refused like any bad request: logged, with a hint
    const req = tooLarge ? `request too large: no newline within ${MAX_REQUEST} bytes` : parse(buffer.slice(0, nl));
    if (typeof req === 'string') {
      log.event('control-bad-request', { message: req });
      return reply({ ok: false, error: { code: 'ERR_BATON_REQUEST', message: req, hint: 'see docs/control.md' } });
    }
    handler(req).then(reply, (err: Error) =>
      reply({ ok: false, error: { code: 'ERR_BATON_INTERNAL', message: err.message } }),
    );
  });
}
