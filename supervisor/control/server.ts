import { lstatSync, mkdirSync, rmdirSync, unlinkSync } from 'node:fs';
import type net from 'node:net';
import { dirname } from 'node:path';
import { runtimeBase } from '../config.js';
import { alreadyRunning, BatonError } from '../errors.js';
import { checkDirectory, withUmask } from '../files.js';
import type { Logger } from '../log.js';
import { closeFd, dupCloexec, setCloexec } from '../sys/fd.js';
import { createListener, isListening, socketAddress, unixSocketOwner } from '../sys/socket.js';
import { acceptOn, type Handler, Unanswered } from './serve.js';

export type { Handler, Reply, Request } from './serve.js';

function lstatOrUndefined(path: string) {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}
/** Node's default for net.Server. */
const BACKLOG = 511;
/** How long pause() waits for the requests accepted before it (a reload --wait may take longer). */
const PAUSE_GRACE_MS = 1000;

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
  private readonly unanswered: Unanswered;

  private constructor(o: {
    path: string;
    server: net.Server;
    made: string[];
    handler: Handler;
    log: Logger;
    unanswered: Unanswered;
  }) {
    const { path, server, made, handler, log, unanswered } = o;
    this.unanswered = unanswered;
    this.path = path;
    this.server = server;
    this.made = made;
    this.handler = handler;
    this.log = log;
  }

  /** The listening socket's fd: a self-upgrade passes it to the next program (see resume). */
  get fd(): number {
    return this.paused ?? (this.server as unknown as { _handle: { fd: number } })._handle.fd;
  }

  /**
   * The control socket a self-upgrade handed over (`fd`, bound at `made`'s path): requests that arrived during the
   * execve wait in its backlog. If `path` is another (a --config edited meanwhile), a new socket there, and the
   * handed one closed and removed; if `path` cannot be opened, the handed one goes on at its own path, with a
   * warning: the generations run, and a resumed baton that gave up would leave them unsupervised.
   */
  static async resume(path: string, fd: number, made: string[], handler: Handler, log: Logger): Promise<ControlServer> {
    const bound = isListening(fd) ? socketAddress(fd) : undefined;
    const at = bound?.kind === 'unix' ? bound.path : undefined;
    if (at !== path) {
      try {
        const opened = await ControlServer.open(path, handler, log);
        closeQuietly(fd);
        if (at !== undefined) rmQuietly(at);
        return opened;
      } catch (err) {
        if (at === undefined) {
          closeQuietly(fd);
          throw err;
        }
        log.event('warning', { message: `${(err as Error).message}; the control socket stays at ${at}` });
      }
    }
    setCloexec(fd, true);
    try {
      const unanswered = new Unanswered();
      const server = await acceptOn(fd, handler, log, unanswered);
      return new ControlServer({ path: at!, server, made, handler, log, unanswered });
    } catch {
      closeQuietly(fd);
      return ControlServer.open(path, handler, log);
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
      // The socket is created 0600, with no window where it is wider.
      fd = withUmask(0o177, () => createListener({ kind: 'unix', path }, BACKLOG, { path }).fd);
      const unanswered = new Unanswered();
      const server = await acceptOn(fd, handler, log, unanswered);
      const dirs: string[] = [];
      // The shared directory of every baton's default socket stays: another baton may be starting in it.
      for (let d = dirname(path); made && d.startsWith(made) && d !== runtimeBase(); d = dirname(d)) dirs.push(d);
      return new ControlServer({ path, server, made: dirs, handler, log, unanswered });
    } catch (err) {
      if (fd !== undefined) {
        closeQuietly(fd);
        rmQuietly(path);
      }
      const e = err as NodeJS.ErrnoException;
      throw new BatonError(
        'ERR_BATON_CONTROL',
        `cannot listen on control socket ${path}: ${e.code ?? e.message}`,
        'choose a writable --control path',
      );
    }
  }

  /**
   * Stops accepting; the socket still listens, so new requests wait in its backlog (for a self-upgrade's
   * execve). Resolves once the requests accepted before are answered (but `reload --wait`, which waits for an
   * upgrade), or after PAUSE_GRACE_MS.
   */
  async pause(): Promise<void> {
    if (this.paused !== undefined || !this.server || this.closed) return;
    this.paused = dupCloexec(this.fd);
    this.server.close();
    this.server = undefined;
    const answered = this.unanswered.none();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([answered, new Promise((resolve) => (timer = setTimeout(resolve, PAUSE_GRACE_MS)))]);
    clearTimeout(timer);
  }

  /** Accepts again after pause(). */
  async resume(): Promise<void> {
    const fd = this.paused;
    if (fd === undefined || this.closed) return;
    this.server = await acceptOn(fd, this.handler, this.log, this.unanswered);
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
