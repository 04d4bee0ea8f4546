import { formatAddress } from './address.js';
import type { Held, Source } from './handover/handover.js';
import { type Keeper, openSource } from './handover/keeper.js';
import type { Listener, ListenSpec } from './listener.js';
import type { Logger } from './log.js';
import type { RunAs } from './run-as.js';
import { closeFd, dupCloexec, setCloexec } from './sys/fd.js';
import { boundPort, createListener, socketAddress } from './sys/socket.js';

/** How a generation socket is made: where (--listen, port 0), its backlog, and what pulls from it. */
export interface SocketPlan {
  spec: ListenSpec;
  backlog: number;
  /** The handover pulls (pidfd): a keeper of its own holds the socket for the generation's processes. */
  pulls: boolean;
  user: RunAs | undefined;
  log: Logger;
}

/**
 * A generation's own listening socket under --steer (socketPerGeneration): its workers and the crash restarts that
 * serve in their place share it, and the steering slot is switched to it once the generation is active. baton holds
 * it while one of its processes lives or it is in the slot, so a crash leaves the queue in the slot for the restart.
 */
export class GenerationSocket {
  readonly listener: Listener;
  readonly port: number;
  readonly source: Source;
  private readonly keeper?: Keeper;
  /** Launches under way with it and processes that have it. */
  private users = 0;

  /** `idle`: its last user is done. */
  constructor(
    plan: SocketPlan,
    fd: number,
    private readonly idle: (s: GenerationSocket) => void,
  ) {
    const address = socketAddress(fd) ?? plan.spec.address;
    this.listener = { name: plan.spec.name, address, fd };
    this.port = boundPort(fd);
    ({ source: this.source, keeper: this.keeper } = openSource(plan.pulls, [this.listener], plan.log, plan.user));
  }

  /** baton's copy for one process of it (Generation.held: its queue and its slot), closed at that process's exit. */
  hold(): Held {
    return { fd: dupCloexec(this.listener.fd), port: this.port };
  }

  get used(): boolean {
    return this.users > 0;
  }

  /** A launch, or a process, uses it until it ends (`ended`). */
  use(ended: Promise<unknown>): void {
    this.users++;
    void ended.finally(() => {
      if (--this.users === 0) this.idle(this);
    });
  }

  /** A self-upgrade: the keeper goes (the next program starts its own when a launch needs it). */
  async pause(): Promise<void> {
    await this.keeper?.close();
  }

  close(): void {
    this.keeper?.kill();
    closeFd(this.listener.fd);
  }
}

/**
 * The generation sockets baton holds. Each is closed once no launch or process uses it and it is not the one
 * that serves (the last to become active: after a crash its queue waits in the slot for the restart).
 * Once one serves, the next generation's socket is made ahead, and its keeper started, so that an upgrade waits
 * for neither (a keeper's start is a process's: about a millisecond under load).
 */
export class GenerationSockets {
  private readonly open = new Set<GenerationSocket>();
  private serving?: GenerationSocket;
  /** The next generation's socket, made ahead; not in `open` until a launch takes it. */
  private spare?: GenerationSocket;
  private closed = false;
  /** A self-upgrade is under way: no spare (its keeper would outlive the exec) until a launch takes a socket. */
  private paused = false;

  constructor(private readonly plan: SocketPlan) {}

  /** A new socket, for a new generation: bound where --listen says, port 0. */
  create(): GenerationSocket {
    this.paused = false; // a launch: a self-upgrade that paused them failed
    const socket = this.spare ?? this.make();
    this.spare = undefined;
    this.open.add(socket);
    return socket;
  }

  /** A process of `socket` became active: the slot serves from it (none: not a generation socket's process). */
  serve(socket: GenerationSocket | undefined): void {
    const before = this.serving;
    if (!socket || socket === before) return;
    this.serving = socket;
    if (before) this.tidy(before);
    // After the activation's turn of the event loop: the upgrade is done by then.
    setImmediate(() => this.makeSpare());
  }

  /** Closes `only` (else every socket) if nothing uses it and it does not serve. */
  tidy(only?: GenerationSocket): void {
    for (const s of only ? [only] : [...this.open]) {
      if (s.used || s === this.serving || !this.open.delete(s)) continue;
      s.close();
    }
  }

  /** The sockets a self-upgrade handed over (`fds`, close-on-exec again). */
  adopt(fds: number[]): void {
    for (const fd of fds) {
      setCloexec(fd, true);
      this.open.add(new GenerationSocket(this.plan, fd, (s) => this.tidy(s)));
    }
  }

  /** A self-upgrade: the keepers go, and the spare with its keeper (the next program makes its own). */
  async pause(): Promise<void> {
    this.paused = true;
    const spare = this.spare;
    this.spare = undefined;
    // The spare's keeper is awaited too: one only killed could still be there, unreaped, at the exec.
    await Promise.all([...this.open, ...(spare ? [spare] : [])].map((s) => s.pause()));
    spare?.close();
  }

  /** The socket bound at `port`. */
  byPort(port: number): GenerationSocket | undefined {
    return [...this.open].find((s) => s.port === port);
  }

  all(): GenerationSocket[] {
    return [...this.open];
  }

  closeAll(): void {
    this.closed = true;
    this.dropSpare();
    for (const s of this.open) s.close();
    this.open.clear();
  }

  private make(): GenerationSocket {
    const { spec, backlog } = this.plan;
    const { fd } = createListener(spec.address, backlog, { listener: formatAddress(spec.address) });
    return new GenerationSocket(this.plan, fd, (s) => this.tidy(s));
  }

  /** A failure here is left to the launch that would have taken it: it makes its own and reports. */
  private makeSpare(): void {
    if (this.closed || this.paused || this.spare) return;
    try {
      this.spare = this.make();
    } catch {
      return;
    }
    this.spare.source.ready().catch(() => {});
  }

  private dropSpare(): void {
    this.spare?.close();
    this.spare = undefined;
  }
}
