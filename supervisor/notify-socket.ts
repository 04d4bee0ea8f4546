import { lchownSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { withUmask } from './files.js';
import { CONTROL } from './printable.js';
import { ensureRuntimeDir } from './runtime-dir.js';
import { closeFd } from './sys/fd.js';
import { createNotifySocket, receiveAll } from './sys/socket.js';

const POLL_MS = 5;
/** The fields baton reads. Others are dropped: a child sending distinct keys must not grow baton's memory. */
const KNOWN = new Set(['READY', 'STATUS', 'ERRNO', 'BATON_HINT']);
/** A value is kept to this many characters; it ends up in one log line. */
const MAX_VALUE = 1024;
/** Datagrams taken in one poll: senders that never let the queue empty must not hold baton's loop. */
const MAX_PER_POLL = 64;

/**
 * A generation's private NOTIFY_SOCKET (sd_notify's protocol). Node cannot read unix datagram
 * sockets, so it is polled while a generation starts, then closed: later messages are refused.
 */
export class NotifySocket {
  readonly path: string;
  /** The fields baton reads that the child has sent so far, the last value winning; values cleaned of controls. */
  readonly fields = new Map<string, string>();
  private readonly fd: number;
  private readonly timer: NodeJS.Timeout;
  private waiters: Array<() => void> = [];

  /** The socket of worker `worker` of generation `number`, in baton's runtime directory `dir`. */
  static pathFor(dir: string, number: number, worker: number): string {
    return join(dir, `notify-${number}-${worker}.sock`);
  }

  constructor(dir: string, number: number, worker: number, owner?: { uid: number; gid: number }) {
    this.path = NotifySocket.pathFor(dir, number, worker);
    ensureRuntimeDir(dir, owner !== undefined);
    // 0600 whatever baton's umask, then handed to the --user: no one else may send READY=1.
    this.fd = withUmask(0o177, () => createNotifySocket(this.path));
    if (owner) lchownSync(this.path, owner.uid, owner.gid);
    this.timer = setInterval(() => this.poll(), POLL_MS);
  }

  /** Resolves once the child has sent READY=1. */
  ready(): Promise<void> {
    return new Promise((resolve) => {
      if (this.fields.get('READY') === '1') return resolve();
      this.waiters.push(() => this.fields.get('READY') === '1' && resolve());
    });
  }

  /** What the child said about itself, for error messages. */
  said(): string | undefined {
    this.poll();
    const status = this.fields.get('STATUS');
    const errno = this.fields.get('ERRNO');
    if (!status && !errno) return undefined;
    return [status, errno && `errno ${errno}`].filter(Boolean).join(', ');
  }

  /** The fix the child suggests for its own failure (BATON_HINT), if any. */
  hint(): string | undefined {
    return this.fields.get('BATON_HINT') || undefined;
  }

  close(): void {
    clearInterval(this.timer);
    closeFd(this.fd);
    try {
      unlinkSync(this.path);
    } catch {
      // the runtime directory may be gone already
    }
  }

  private poll(): void {
    const messages = receiveAll(this.fd, MAX_PER_POLL);
    if (messages.length === 0) return;
    for (const m of messages) {
      for (const line of m.split('\n')) {
        const eq = line.indexOf('=');
        const key = line.slice(0, eq);
        if (KNOWN.has(key)) this.fields.set(key, line.slice(eq + 1, eq + 1 + MAX_VALUE).replace(CONTROL, '?'));
      }
    }
    for (const w of this.waiters) w();
  }
}
