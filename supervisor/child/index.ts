/**
 * The child side of baton: take the listeners, say ready, drain on the stop signal.
 * Kept small and free of heavy imports; koffi loads only when a syscall is needed.
 */

import type { Server as HttpServer, ServerResponse } from 'node:http';
import { type ListenOptions, Server as NetServer, type Server, type Socket } from 'node:net';
import { yamaScope } from '../sys/proc.js';

export interface InheritedListener {
  fd: number;
  /** BATON_LISTENERS address (or LISTEN_FDNAMES name under socket activation). */
  name: string;
}

let taken: InheritedListener[] | undefined;

function list(v: string | undefined): string[] {
  return v ? v.split(/[,:]/).filter(Boolean) : [];
}

/**
 * The listeners baton hands over: pulled with pidfd_getfd from `_PID`/`_FD` (baton's default),
 * or inherited at fds 3.. by `LISTEN_FDS` (systemd's protocol). Empty when not under baton.
 * The variables are removed so that this process's own children do not misread them.
 */
export async function listeners(): Promise<InheritedListener[]> {
  if (taken) return taken;
  const env = process.env;
  const names = env.BATON_LISTENERS?.split(',') ?? [];
  if (env._PID && env._FD) {
    const { grabFds } = await import('../sys/pidfd.js');
    try {
      const targets = env._FD.split(',').map(Number);
      const fds = await withYamaRetry(() => grabFds(Number(env._PID), targets));
      taken = fds.map((fd, i) => ({ fd, name: names[i] ?? `listener${i}` }));
    } catch (err) {
      const e = err as { message: string; errno?: number; hint?: string };
      // ERRNO and STATUS are sd_notify's fields; BATON_HINT is ours, shown by baton as the hint.
      await notify(`STATUS=${e.message}\nERRNO=${Math.abs(e.errno ?? 0)}${e.hint ? `\nBATON_HINT=${e.hint}` : ''}`);
      throw err;
    }
  } else if (env.LISTEN_FDS && Number(env.LISTEN_PID) === process.pid) {
    const fdnames = list(env.LISTEN_FDNAMES);
    taken = Array.from({ length: Number(env.LISTEN_FDS) }, (_, i) => ({
      fd: 3 + i,
      name: fdnames[i] ?? names[i] ?? `listener${i}`,
    }));
  } else {
    taken = [];
  }
  for (const k of ['_PID', '_FD', 'LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES']) delete env[k];
  return taken;
}

/**
 * Under Yama scope 1, baton's keeper names this process as its ptracer right after it is spawned, or,
 * when several are launched at once, once the ones spawned before it have grabbed: until then it gets
 * EPERM. Short retries for up to a second cover that wait.
 */
async function withYamaRetry<T>(grab: () => T): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return grab();
    } catch (err) {
      if ((err as { code?: string }).code !== 'EPERM' || attempt >= 100 || yamaScope() === undefined) throw err;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

/** Listens on the first handed-over listener, or on `fallback` when not under baton. */
export async function listen(
  server: Server,
  fallback: ListenOptions = { port: Number(process.env.PORT ?? 8080) },
): Promise<void> {
  const [first] = await listeners();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(first ? { fd: first.fd } : fallback, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** sd_notify: sends `message` to NOTIFY_SOCKET; false when there is none or it is gone. */
export async function notify(message: string): Promise<boolean> {
  const target = process.env.NOTIFY_SOCKET;
  if (!target) return false;
  const { sendNotify } = await import('../sys/socket.js');
  try {
    sendNotify(target, message);
    return true;
  } catch {
    return false;
  }
}

/** Tells baton (or systemd) that this process serves. */
export async function ready(status?: string): Promise<boolean> {
  return notify(`READY=1${status ? `\nSTATUS=${status}` : ''}`);
}

export interface DrainOptions {
  /** The stop signal baton sends (its --stop-signal). */
  signal?: NodeJS.Signals;
  /**
   * How long after the stop signal connections may stay open, in ms (default 10 s): idle keep-alive
   * connections (Node's own `keepAliveTimeout` may close them sooner) and requests still in flight.
   * Whatever is left then is closed.
   */
  grace?: number;
  /**
   * Called when every connection is closed: close the application's other resources here. The
   * helper never exits the process itself; with nothing else open, Node then exits with 0.
   */
  onDrained?: () => void;
}

/**
 * On the stop signal: stop accepting (the listener stays open in baton and the next generation, so
 * queued connections are not lost), answer what is still served with `Connection: close`, and close
 * idle connections after the grace period. Node's own http `close()` would close idle keep-alive
 * connections at once, racing with the client's next request on them.
 */
export function drainOnStop(server: Server, options: DrainOptions = {}): void {
  const { signal = 'SIGTERM', grace = 10_000, onDrained } = options;
  let draining = false;
  const sockets = new Set<Socket>();
  // Responses not yet finished: those still to send their headers get `Connection: close` too.
  const responses = new Set<ServerResponse>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.prependListener('request', (_req: unknown, res: ServerResponse) => {
    if (draining) {
      res.setHeader('Connection', 'close');
    } else {
      responses.add(res);
      res.once('close', () => responses.delete(res));
    }
  });
  process.once(signal, () => {
    draining = true;
    for (const res of responses) if (!res.headersSent) res.setHeader('Connection', 'close');
    responses.clear();
    NetServer.prototype.close.call(server, () => onDrained?.());
    const http = server as HttpServer;
    const timer = setTimeout(() => {
      if (typeof http.closeAllConnections === 'function') http.closeAllConnections();
      for (const s of sockets) s.destroy();
    }, grace);
    timer.unref();
  });
}

/** listen + drainOnStop + ready, the usual sequence for a server under baton. */
export async function serve(server: Server, fallback?: ListenOptions, options?: DrainOptions): Promise<void> {
  drainOnStop(server, options);
  await listen(server, fallback);
  await ready();
}
