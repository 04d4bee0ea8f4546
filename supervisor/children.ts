/** Pids of the processes baton spawned itself (generations, probes, preflights); the reaper leaves them to libuv. */
export const ownChildren = new Set<number>();

/** Registers a child while `exited` is pending. */
export function track(pid: number | undefined, exited: Promise<unknown>): void {
  if (pid === undefined) return;
  ownChildren.add(pid);
  void exited.finally(() => ownChildren.delete(pid)).catch(() => {});
}

/** Spawns under way on a worker thread: their child may exist while its pid is not known yet. */
let pending = 0;
let settled: Array<() => void> = [];

export function spawning<T>(spawn: Promise<T>): Promise<T> {
  pending++;
  return spawn.finally(() => {
    if (--pending > 0) return;
    for (const resolve of settled) resolve();
    settled = [];
  });
}

/** True while a spawn is under way: any zombie may be one of baton's own, and the umask is the child's too. */
export function spawnPending(): boolean {
  return pending > 0;
}

/** Resolves when the spawns under way have settled (another may have begun by the time its waiter runs). */
export function spawnsSettled(): Promise<void> {
  return new Promise((resolve) => (pending === 0 ? resolve() : settled.push(resolve)));
}
