import net from 'node:net';
import { MAX_DURATION } from '../duration.js';
import type { ErrorCode } from '../error-codes.js';
import { listenOn } from '../listen-on.js';
import type { Logger } from '../log.js';
import { peerCredentials } from '../sys/socket.js';
import type { StepSink } from './progress.js';

// One connection to the control socket: one JSON request line, one JSON reply line (server.ts owns the socket).

export interface Request {
  command: 'reload' | 'status' | 'stop';
  wait?: boolean;
  timeout?: number;
  /** reload --wait: the upgrade's steps as they happen, one `{"progress": {...}}` line each, before the reply. */
  progress?: boolean;
}

export type Reply =
  | { ok: true; [k: string]: unknown }
  | { ok: false; error: { code: ErrorCode; message: string; hint?: string }; [k: string]: unknown };

/**
 * The connection a request came on: its fd while it waits for the answer (a self-upgrade carries it on), and the
 * progress lines written to it before the reply.
 */
export interface Client extends StepSink {
  fd(): number | undefined;
}

export type Handler = (req: Request, client: Client) => Promise<Reply>;

/**
 * Connections whose request is not answered yet, but for `reload --wait` ones (a self-upgrade carries those on to
 * the next program): a pause waits for them.
 */
export class Unanswered {
  private readonly sockets = new Set<net.Socket>();
  private wake?: () => void;

  add(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.delete(socket));
  }

  delete(socket: net.Socket): void {
    this.sockets.delete(socket);
    if (this.sockets.size === 0) this.wake?.();
  }

  /** Resolves once none is left. */
  none(): Promise<void> {
    return this.sockets.size === 0 ? Promise.resolve() : new Promise((resolve) => (this.wake = resolve));
  }
}

/** The answer to a carried connection `fd` (then closed); a client that went away meanwhile gets nothing. */
export function replyOn(fd: number, r: Reply): void {
  const socket = new net.Socket({ fd, readable: false, writable: true });
  socket.on('error', () => {});
  socket.end(JSON.stringify(r) + '\n');
}

const COMMANDS = new Set(['reload', 'status', 'stop']);

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
  if (r.progress !== undefined && typeof r.progress !== 'boolean') return '"progress" must be true or false';
  return r;
}

/** A net.Server accepting on the listening socket `fd`. */
export async function acceptOn(fd: number, handler: Handler, log: Logger, unanswered: Unanswered): Promise<net.Server> {
  const server = net.createServer((socket) => {
    unanswered.add(socket);
    serve(socket, handler, log, unanswered);
  });
  await listenOn(server, fd, log, 'control socket');
  return server;
}

const IDLE_MS = 30_000;

function serve(socket: net.Socket, handler: Handler, log: Logger, unanswered: Unanswered): void {
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
    // From here the handler bounds the wait (a reload --wait may take longer than a client may idle).
    socket.setTimeout(0);
    if (req.command === 'reload' && req.wait) unanswered.delete(socket);
    const open = () => !socket.destroyed && !socket.writableEnded;
    const client: Client = {
      fd: () => (open() ? fd : undefined),
      write: (step) => void (open() && socket.write(`${JSON.stringify({ progress: step })}\n`)),
      unread: () => socket.writableLength,
      gone: () => !open(),
    };
    handler(req, client).then(reply, (err: Error) =>
      reply({ ok: false, error: { code: 'ERR_BATON_INTERNAL', message: err.message } }),
    );
  });
}
