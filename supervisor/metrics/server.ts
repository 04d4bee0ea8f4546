import { unlinkSync } from 'node:fs';
import http from 'node:http';
import { dirname } from 'node:path';
import { type Address, formatAddress, sameAddress } from '../address.js';
import { BatonError } from '../errors.js';
import { checkDirectory, withUmask } from '../files.js';
import { listenOn } from '../listen-on.js';
import { clearStaleUnixSocket, inUse } from '../listener.js';
import type { Logger } from '../log.js';
import { closeFd, dupCloexec, setCloexec } from '../sys/fd.js';
import { createListener, isListening, socketAddress } from '../sys/socket.js';

/** What the server serves: Prometheus' text format. */
export interface Exposition {
  contentType: string;
  text(): Promise<string>;
}

const BACKLOG = 64;
/** A scraper sends a short request and reads a few kB: anything slower or larger is cut off. */
const LIMITS = {
  headersTimeout: 5_000,
  requestTimeout: 10_000,
  keepAliveTimeout: 5_000,
  maxHeaderSize: 8 * 1024,
  // How often Node looks for requests past their timeouts (30 s by default).
  connectionsCheckingInterval: 1_000,
};
const MAX_CONNECTIONS = 64;
const IDLE_MS = 10_000;
/** How long pause() lets a scrape in flight finish before its connection is cut. */
const PAUSE_GRACE_MS = 250;

/**
 * `--metrics`: an HTTP server for `GET /metrics` on a socket baton binds itself (never one of the supervised
 * listeners). A self-upgrade hands the listening socket to the next program: scrapes meanwhile wait in its backlog.
 */
export class MetricsServer {
  private server?: http.Server;
  /** While paused: the listening socket, which no server accepts on. */
  private paused?: number;

  private constructor(
    /** As bound (port 0 resolved). */
    readonly address: Address,
    private listening: number,
    private readonly exposition: Exposition,
    private readonly log: Logger,
  ) {}

  static async open(address: Address, exposition: Exposition, log: Logger): Promise<MetricsServer> {
    const text = formatAddress(address);
    let fd: number | undefined;
    try {
      if (address.kind === 'unix') {
        // As the control socket's: nobody else may swap the file for a socket of theirs.
        checkDirectory(dirname(address.path), 'metrics socket');
        if (clearStaleUnixSocket(address.path)) {
          log.event('stale-socket', { message: `removed stale metrics socket ${address.path}` });
        }
      }
      let made: { fd: number; port: number };
      try {
        // A unix socket is mode 0666, as open to local users as a TCP port on 127.0.0.1; its directory may restrict it.
        made = withUmask(0o111, () => createListener(address, BACKLOG, { metrics: text }));
      } catch (err) {
        throw inUse(err, address);
      }
      fd = made.fd;
      const bound = address.kind === 'tcp' ? { ...address, port: made.port } : address;
      const server = new MetricsServer(bound, fd, exposition, log);
      await server.accept(fd);
      return server;
    } catch (err) {
      if (fd !== undefined) closeFd(fd);
      if (fd !== undefined && address.kind === 'unix') removeQuietly(address.path);
      const e = err as BatonError;
      const hint = e.hint || 'choose another --metrics address';
      throw new BatonError('ERR_BATON_METRICS', `cannot listen on --metrics ${text}: ${e.message}`, hint);
    }
  }

  /**
   * The listening socket the program before a self-upgrade handed over, if it is bound where `address` says (port
   * 0: any port); else undefined, `fd` closed.
   */
  static async adopt(
    fd: number,
    address: Address,
    exposition: Exposition,
    log: Logger,
  ): Promise<MetricsServer | undefined> {
    const bound = isListening(fd) ? socketAddress(fd) : undefined;
    const wanted =
      bound?.kind === 'tcp' && address.kind === 'tcp' && address.port === 0
        ? { ...address, port: bound.port }
        : address;
    const same = bound !== undefined && sameAddress(bound, wanted);
    if (!same) {
      closeFd(fd);
      return undefined;
    }
    setCloexec(fd, true);
    const server = new MetricsServer(bound!, fd, exposition, log);
    await server.accept(fd);
    return server;
  }

  /** The listening socket's fd: a self-upgrade passes it on. */
  get fd(): number {
    return this.paused ?? this.listening;
  }

  /** Stops accepting (scrapes wait in the backlog); a scrape in flight gets PAUSE_GRACE_MS to finish. */
  async pause(): Promise<void> {
    const server = this.server;
    if (!server || this.paused !== undefined) return;
    // Closing the server closes its fd: a copy keeps the socket listening.
    this.paused = dupCloexec(this.listening);
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise((resolve) => (timer = setTimeout(resolve, PAUSE_GRACE_MS)))]);
    clearTimeout(timer);
    server.closeAllConnections();
  }

  async resume(): Promise<void> {
    const fd = this.paused;
    if (fd === undefined) return;
    this.paused = undefined;
    this.listening = fd;
    await this.accept(fd);
  }

  close(): void {
    this.server?.close();
    this.server?.closeAllConnections();
    this.server = undefined;
    if (this.paused !== undefined) closeFd(this.paused);
    this.paused = undefined;
    if (this.address.kind === 'unix') removeQuietly(this.address.path);
  }

  private async accept(fd: number): Promise<void> {
    const server = http.createServer(LIMITS, (req, res) => this.answer(req, res));
    server.maxConnections = MAX_CONNECTIONS;
    server.setTimeout(IDLE_MS, (socket) => socket.destroy());
    await listenOn(server, fd, this.log, 'metrics listener');
    this.server = server;
  }

  private answer(req: http.IncomingMessage, res: http.ServerResponse): void {
    const refuse = (status: number, text: string, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close', ...headers });
      res.end(`${text}\n`);
    };
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') return void refuse(404, 'not found: baton serves only GET /metrics');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return void refuse(405, 'method not allowed: baton serves only GET /metrics', { Allow: 'GET, HEAD' });
    }
    this.exposition.text().then(
      (text) => {
        res.writeHead(200, { 'Content-Type': this.exposition.contentType });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (err: Error) => refuse(500, `metrics failed: ${err.message}`),
    );
  }
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // gone
  }
}
