import { threadCpuMs } from './sys/clock.js';

/** The steps of an upgrade that are baton's own work, as the `upgraded` event reports them. */
export type Step = 'plan' | 'spawn' | 'exec' | 'record' | 'activate' | 'switch';

/** A moment, or a span, on two clocks (ms): the wall (performance.now()) and the CPU time of baton's main thread. */
export interface Clocks {
  wall: number;
  cpu: number;
}

export const clocks = (): Clocks => ({ wall: performance.now(), cpu: threadCpuMs() });

/** From `a` to `b` (now if not given), on both clocks. */
export const span = (a: Clocks, b = clocks()): Clocks => ({ wall: b.wall - a.wall, cpu: b.cpu - a.cpu });

/** The steps baton waits on: `own_ms` is their sum; `switch` is part of `activate`; `exec` and `record` are not. */
const OWN: readonly Step[] = ['plan', 'spawn', 'activate'];

/**
 * baton's own time in one upgrade, step by step (sub-millisecond): `plan` (options, release, a generation's socket),
 * `spawn` (from the plan or the batch before until baton's part of the batch's last spawn is done: keeper, notify
 * socket, env, file actions), `activate` (from a batch ready to its workers active, with the slot switch in it), and
 * `switch` (the steering slot alone, part of `activate`). The child's start and grab, and --check, are not baton's:
 * skip() them. `exec` (the clone and the child's exec, on a worker thread while baton's own is free) is the start
 * of the child, and `record` (the run record and the spawn line, written once a process exists) runs beside it:
 * both are reported, and are not part of `own_ms`, the time the upgrade waits on baton. `own_cpu_ms` is the CPU
 * baton's main thread spent in its steps: under load the wall clock also counts the time baton waited for a core.
 */
export class Steps {
  private readonly ms: Record<Step, number> = { plan: 0, spawn: 0, exec: 0, record: 0, activate: 0, switch: 0 };
  private cpu = 0;
  private readonly started = performance.now();
  private since = clocks();

  /** ms since the upgrade began (this object's making): the upgrade's own clock, which the steps cover. */
  elapsed(at = performance.now()): number {
    return at - this.started;
  }

  /** add(step), and the ms since the upgrade began at that same moment: the steps then cover exactly that. */
  close(step: Step): number {
    this.add(step);
    return this.elapsed(this.since.wall);
  }

  /** The time since the last add() or skip() goes to `step`; or, given, `took` alone (the clocks run on). */
  add(step: Step, took?: Clocks): void {
    const now = took ? undefined : clocks();
    const d = took ?? span(this.since, now);
    this.ms[step] += d.wall;
    if (OWN.includes(step)) this.cpu += d.cpu;
    if (now) this.since = now;
  }

  /** `took`, counted in `from` so far, goes to `to` instead. */
  move(from: Step, to: Step, took: Clocks): void {
    this.add(from, { wall: -took.wall, cpu: -took.cpu });
    this.add(to, took);
  }

  /** The time since the last add() or skip(), until `at`, goes to `step`: steps that follow each other leave no gap. */
  until(step: Step, at: Clocks): void {
    this.add(step, span(this.since, at));
    this.since = at;
  }

  /** The time since the last add() or skip(), until `at` (now if not given), is not baton's. */
  skip(at = clocks()): void {
    this.since = at;
  }

  /** For the log: each step's ms, `own_ms` (plan, spawn and activate) and `own_cpu_ms`, to 0.01 ms. */
  fields(): Record<string, number> {
    const round = (ms: number) => Math.round(ms * 100) / 100;
    const each = Object.entries(this.ms).map(([step, ms]) => [`${step}_ms`, round(ms)]);
    const own = OWN.reduce((sum, step) => sum + this.ms[step], 0);
    return { ...Object.fromEntries(each), own_ms: round(own), own_cpu_ms: round(this.cpu) };
  }
}
