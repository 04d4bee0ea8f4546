// Checks for JSON that baton reads back (a self-upgrade's state, the run record, the steering state):
// nothing in it is used before its shape is known.

export type Check = (v: unknown) => boolean;

export const int: Check = (v) => Number.isSafeInteger(v) && (v as number) >= 0;
export const num: Check = (v) => typeof v === 'number' && Number.isFinite(v);
export const text: Check = (v) => typeof v === 'string';
export const bool: Check = (v) => typeof v === 'boolean';
/** A pid baton may signal: never 0 (its own group) or 1 (init, or every process with kill(-1)). */
export const pid: Check = (v) => int(v) && (v as number) > 1;
/** Field 22 of /proc/PID/stat, as read. */
export const starttime: Check = (v) => typeof v === 'string' && /^\d+$/.test(v);

export const list =
  (item: Check): Check =>
  (v) =>
    Array.isArray(v) && v.every(item);

/** An object with each of `fields`, and each of `optional` that it has. */
export const record =
  (fields: Record<string, Check>, optional: Record<string, Check> = {}): Check =>
  (v) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
    const o = v as Record<string, unknown>;
    return (
      Object.entries(fields).every(([k, f]) => f(o[k])) &&
      Object.entries(optional).every(([k, f]) => o[k] === undefined || f(o[k]))
    );
  };
