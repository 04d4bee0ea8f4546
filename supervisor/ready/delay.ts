import { setTimeout as sleep } from 'node:timers/promises';

/** Ready after a fixed time; an abort leaves the promise pending (the caller has moved on). */
export function delay(ms: number, signal: AbortSignal): Promise<void> {
  return sleep(ms, undefined, { signal }).catch(() => new Promise<void>(() => {}));
}
