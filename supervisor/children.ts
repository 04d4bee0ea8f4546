/** Pids of the processes baton spawned itself (generations, probes, preflights); the reaper leaves them to libuv. */
export const ownChildren = new Set<number>();

/** Registers a child while `exited` is pending. */
export function track(pid: number | undefined, exited: Promise<unknown>): void {
  if (pid === undefined) return;
  ownChildren.add(pid);
  void exited.finally(() => ownChildren.delete(pid)).catch(() => {});
}
