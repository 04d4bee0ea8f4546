import { MAX_DURATION } from '../duration.js';
import { lstatSync, mkdirSync, rmdirSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { dirname } from 'node:path';
import type { ErrorCode } from '../error-codes.js';
import { alreadyRunning, BatonError } from '../errors.js';
import { checkDirectory } from '../files.js';
import { runtimeBase } from './path.js';
import type { Logger } from '../log.js';
import { closeFd, dupCloexec, setCloexec } from '../sys/fd.js';
import { createListener, isListening, peerCredentials, socketAddress, unixSocketOwner } from '../sys/socket.js';

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
/** Node's default for net.Server. */
const BACKLOG = 511;
/** How long pause() waits for the requests accepted before it (a reload --wait may take longer). */
const PAUSE_GRACE_MS = 1000;

function parse(line: string): Request | string {
  let req: unknown;
  try {
    req = JSON.parse(line);
  } catch {
    return 'the request is not JSON';
  }
  if (typeof req !== 'object' || req === null || !COMMANDS.has((req as Request).command)) return 'the request needs "command": "reload", "status" or "stop"';
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
  /** The directories open() created for the socket, deepest first: removed again on close if empty. */
  readonly made: string[];
  private server?: net.Server;
  /** While paused: the listening socket, which no net.Server accepts on. */
  private paused?: number;
  private closed = false;
  private readonly handler: Handler;
  private readonly log: Logger;

  private constructor(path: string, server: net.Server, made: string[], handler: Handler, log: Logger) {
    this.path = path;
    this.server = server;
    this.made = made;
    this.handler = handler;
    this.log = log;
  }

  /** The listening socket's fd: a self-upgrade passes it to the next program (see adopt). */
  get fd(): number {
    return this.paused ?? (this.server as unknown as { _handle: { fd: number } })._handle.fd;
  }

  /**
   * The control socket a self-upgrade handed over (`fd`, listening at `path` all along): requests that
   * arrived during the execve wait in its backlog. Undefined (and `fd` closed) if it is not that socket.
   */
  static async adopt(
    path: string,
    fd: number,
    made: string[],
    handler: Handler,
    log: Logger,
  ): Promise<ControlServer | undefined> {
    const bound = isListening(fd) ? socketAddress(fd) : undefined;
    if (bound?.kind !== 'unix' || bound.path !== path) {
      closeQuietly(fd);
      // This baton's socket at a path its configuration no longer names (a --config edited meanwhile).
      if (bound?.kind === 'unix') rmQuietly(bound.path);
      return undefined;
    }
    setCloexec(fd, true);
    try {
      return new ControlServer(path, await acceptOn(fd, handler, log), made, handler, log);
    } catch {
      closeQuietly(fd);
      return undefined;
    }
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
    // Bound here rather than by libuv, which would remove the file whenever its server closes (pause).
    let fd: number | undefined;
    try {
      const umask = process.umask(0o177); // the socket is created 0600, with no window where it is wider
      try {
        fd = createListener({ kind: 'unix', path }, BACKLOG, { path }).fd;
      } finally {
        process.umask(umask);
      }
      const server = await acceptOn(fd, handler, log);
      const dirs: string[] = [];
      // The shared directory of every baton's default socket stays: another baton may be starting in it.
      for (let d = dirname(path); made && d.startsWith(made) && d !== runtimeBase(); d = dirname(d)) dirs.push(d);
      return new ControlServer(path, server, dirs, handler, log);
    } catch (err) {
      if (fd !== undefined) {
        closeQuietly(fd);
        rmQuietly(path);
      }
      const e = err as NodeJS.ErrnoException;
      throw new BatonError('ERR_BATON_CONTROL', `cannot listen on control socket ${path}: ${e.code ?? e.message}`, 'choose a writable --control path');
    }
  }

  /**
   * Stops accepting; the socket still listens, so new requests wait in its backlog (for a self-upgrade's
   * execve). Resolves once the requests accepted before are answered, or after PAUSE_GRACE_MS.
   */
  async pause(): Promise<void> {
    if (this.paused !== undefined || !this.server || this.closed) return;
    this.paused = dupCloexec(this.fd);
    const answered = new Promise((resolve) => this.server!.close(resolve));
    this.server = undefined;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([answered, new Promise((resolve) => (timer = setTimeout(resolve, PAUSE_GRACE_MS)))]);
    clearTimeout(timer);
  }

  /** Accepts again after pause(). */
  async resume(): Promise<void> {
    const fd = this.paused;
    if (fd === undefined || this.closed) return;
    this.server = await acceptOn(fd, this.handler, this.log);
    this.paused = undefined;
  }

  close(): void {
    this.closed = true;
    this.server?.close();
    if (this.paused !== undefined) closeQuietly(this.paused);
    rmQuietly(this.path);
    try {
      for (const d of this.made) rmdirSync(d);
    } catch {
      // not empty
    }
  }
}

/** A net.Server accepting on the listening socket `fd`. */
async function acceptOn(fd: number, handler: Handler, log: Logger): Promise<net.Server> {
  const server = net.createServer((socket) => serve(socket, handler, log));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // From now on an error is one failed accept (EMFILE, ENOBUFS): the server goes on listening.
  // Unhandled, the second one would take baton down with it.
  server.on('error', (err: NodeJS.ErrnoException) => {
    log.event('warning', { message: `control socket: ${err.code ?? err.message}` });
  });
  return server;
}

function rmQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // gone
  }
}

function closeQuietly(fd: number): void {
  try {
    closeFd(fd);
  } catch {
    // not open
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
    reply({ ok: false, error: { code: 'ERR_BATON_FORBIDDEN', message: `uid ${peer.uid} may not control this baton`, hint: `ask as root or as uid ${me}` } });
    return;
  }
  let buffer = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    if (buffer.length > MAX_REQUEST) return reply({ ok: false, error: { code: 'ERR_BATON_REQUEST', message: 'request too large' } });
    const nl = buffer.indexOf('\n');
    if (nl < 0) return;
    socket.removeAllListeners('data');
    const req = parse(buffer.slice(0, nl));
    if (typeof req === 'string') {
      log.event('control-bad-request', { message: req });
      return reply({ ok: false, error: { code: 'ERR_BATON_REQUEST', message: req, hint: 'see docs/control.md' } });
    }
    handler(req).then(reply, (err: Error) => reply({ ok: false, error: { code: 'ERR_BATON_INTERNAL', message: err.message } }));
  });
}
