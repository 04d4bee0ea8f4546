import { ownChildren } from './children.js';
import type { Logger } from './log.js';
import { commandLine, environ, family, ownChildPids, processGroup, startTime } from './sys/proc.js';

/**
 * The descendants of one generation's process that left its process group (setsid, setpgid): a
 * signal to the group misses them, so each gets the generation's signals itself. They are found by
 * walking the process tree from the leader while it lives (a child that left the group is still a
 * child), and, as a subreaper or PID 1, among baton's own children that baton did not spawn and
 * whose environment names this generation and worker (a double-forked daemon is reparented to
 * baton). Each one seen is remembered with its start time until it is gone.
 */
export class Escapees {
  private readonly seen = new Map<number, string>();
  private readonly marks: string[];

  constructor(
    private readonly generation: number,
    worker: number,
    private readonly leader: number,
    private readonly log: Logger,
  ) {
    this.marks = [`BATON_GENERATION=${generation}`, `BATON_WORKER=${worker}`];
  }

  /** Looks again; `leaderAlive`: the leader's pid is still its own (not reaped, so not reused). Returns the pids. */
  look(leaderAlive: boolean): number[] {
    const roots = ownChildPids().filter((pid) => !ownChildren.has(pid) && this.marked(pid));
    if (leaderAlive && this.leader > 0) roots.push(this.leader);
    for (const pid of roots.flatMap(family)) {
      if (this.seen.has(pid) || processGroup(pid) === this.leader) continue;
      const start = startTime(pid);
      if (start !== undefined) this.seen.set(pid, start);
    }
    for (const [pid, start] of this.seen) if (startTime(pid) !== start) this.seen.delete(pid);
    return [...this.seen.keys()];
  }

  /** Sends `sig` to every escapee, each checked against its start time right before; logs whom. */
  signal(sig: NodeJS.Signals, leaderAlive: boolean): void {
    const sent: string[] = [];
    for (const pid of this.look(leaderAlive)) {
      const command = commandLine(pid);
      if (startTime(pid) !== this.seen.get(pid)) continue;
      try {
        process.kill(pid, sig);
        sent.push(`pid ${pid} (${command})`);
      } catch {
        // gone meanwhile
      }
    }
    if (!sent.length) return;
    const message = `${sent.join(', ')} left the process group of pid ${this.leader}; sent ${sig}`;
    this.log.event('escaped', { generation: this.generation, signal: sig, message });
  }

  private marked(pid: number): boolean {
    const env = environ(pid);
    return this.marks.every((m) => env.includes(m));
  }
}
