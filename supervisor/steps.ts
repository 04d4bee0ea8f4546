/** The steps of an upgrade that are baton's own work, as the `upgraded` event reports them. */
export type Step = 'plan' | 'spawn' | 'record' | 'activate' | 'switch';

/**
 * baton's own time in one upgrade, step by step (performance.now(), sub-millisecond): `plan` (options, release,
 * a generation's socket), `spawn` (from each batch's launch until its last process exists: handover, notify socket,
 * posix_spawn), `activate` (from a batch ready to its workers active, with the slot switch in it), and `switch` (the
 * steering slot alone, part of `activate`). The child's start and grab, and --check, are not baton's: skip() them.
 * `record` (the run record and the spawn line, written once a process exists) runs beside the child's start: it is
 * reported, and not part of `own_ms`, the time the upgrade waits on baton.
 */
export class Steps {
  private readonly ms: Record<Step, number> = { plan: 0, spawn: 0, record: 0, activate: 0, switch: 0 };
  private since = performance.now();

  /** The time since the last add() or skip() goes to `step`; or, given, `ms` alone (the clock runs on). */
  add(step: Step, ms?: number): void {
    if (ms !== undefined) {
      this.ms[step] += ms;
      return;
    }
    const now = performance.now();
    this.ms[step] += now - this.since;
    this.since = now;
  }

  /** The time since the last add() or skip(), until `at` (now if not given), is not baton's. */
  skip(at = performance.now()): void {
    this.since = at;
  }

  /** For the log: each step's ms and `own_ms`, the sum of plan, spawn and activate, to 0.01 ms. */
  fields(): Record<string, number> {
    const round = (ms: number) => Math.round(ms * 100) / 100;
    const { plan, spawn, activate } = this.ms;
    const each = Object.entries(this.ms).map(([step, ms]) => [`${step}_ms`, round(ms)]);
    return { ...Object.fromEntries(each), own_ms: round(plan + spawn + activate) };
  }
}
