// No imports, and CommonJS: hold.cts loads it before anything else when baton resumes a self-upgrade.

/** The signals baton acts on. */
export const SIGNALS = ['SIGHUP', 'SIGTERM', 'SIGINT', 'SIGTTIN', 'SIGTTOU', 'SIGUSR2'] as const;
export type BatonSignal = (typeof SIGNALS)[number];

const isBatonSignal = (s: unknown): s is BatonSignal => (SIGNALS as readonly unknown[]).includes(s);

/**
 * baton's handlers for SIGNALS, installed once (a signal with no handler kills baton). A signal is
 * either handled at once or held in a queue, in order, until handle() is given a handler again:
 * from the start of a resumed program until its supervisor runs, and during a self-upgrade.
 */
export class Signals {
  private handler?: (sig: BatonSignal) => void;
  /** Signals handled even while the others are held. */
  private through = new Set<BatonSignal>();
  private readonly queue: BatonSignal[] = [];
  private held = true;
  private readonly listener = (sig: NodeJS.Signals) => {
    if (!isBatonSignal(sig)) return;
    if (this.handler && (!this.held || this.through.has(sig))) this.handler(sig);
    else this.queue.push(sig);
  };

  constructor() {
    for (const s of SIGNALS) process.on(s, this.listener);
  }

  /** From now on signals go to `handler`: first `earlier` (e.g. from the program before), then the held ones. */
  handle(handler: (sig: BatonSignal) => void, earlier: unknown[] = []): void {
    this.handler = handler;
    this.release(earlier);
  }

  /** Handles signals again: `earlier` first (signals take()n before), then the held ones. */
  release(earlier: unknown[] = []): void {
    this.held = false;
    // Through the listener: a handler that holds signals again holds the rest of the backlog too.
    for (const s of [...earlier.filter(isBatonSignal), ...this.queue.splice(0)]) this.listener(s);
  }

  /** Holds every signal from now on, except `through`. */
  hold(through: BatonSignal[] = []): void {
    this.held = true;
    this.through = new Set(through);
  }

  /** The signals held so far, in order; the queue is empty afterwards. */
  take(): BatonSignal[] {
    return this.queue.splice(0);
  }

  close(): void {
    for (const s of SIGNALS) process.off(s, this.listener);
  }
}
