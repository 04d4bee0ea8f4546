/** Small statistics over the load generator's samples: [t ms, latency ms, outcome, generation]. */
export type Sample = [number, number, string, number];

const sorted = (values: number[]): Float64Array => Float64Array.from(values).sort();

/**
 * The p-th percentile by nearest rank: the smallest value that at least p% of the values do not exceed,
 * sorted[ceil(p / 100 × n) − 1]; always one of the values. NaN when there are none.
 */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = sorted(values);
  const rank = Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length)));
  return s[rank - 1]!;
}

/** The middle value; for an even count the mean of the two middle values. NaN when there are none. */
export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const s = sorted(values);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Smallest and largest (no spread of the array into arguments: runs hold up to millions of samples). */
export function range(values: number[]): { min: number; max: number } {
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return values.length ? { min, max } : { min: NaN, max: NaN };
}

export interface Latency {
  /** The median. */
  p50: number;
  /** Nearest rank (see percentile). */
  p99: number;
  max: number;
}

/** Of the requests that succeeded; NaN for each when none did. */
export function latency(samples: Sample[]): Latency {
  const ok = samples.filter((s) => s[2] === 'ok').map((s) => s[1]);
  const round = (n: number) => Math.round(n * 100) / 100;
  return { p50: round(median(ok)), p99: round(percentile(ok, 99)), max: round(range(ok).max) };
}

/** The samples of requests that started in the `windowMs` after a mark (ms since the load started). */
export function afterMarks(samples: Sample[], marks: number[], windowMs = 1000): Sample[] {
  return samples.filter((s) => marks.some((m) => s[0] >= m && s[0] < m + windowMs));
}

/**
 * The longest time in which no request completed successfully, from the start of the load (0) to its end
 * (`elapsedMs`), and where it began: the measure behind "no window of 500 ms without a completed request".
 */
export function longestGap(samples: Sample[], elapsedMs: number): { ms: number; at: number } {
  const done = Float64Array.from(samples.filter((s) => s[2] === 'ok').map((s) => s[0] + s[1])).sort();
  let gap = { ms: 0, at: 0 };
  let last = 0;
  for (const t of [...done, elapsedMs]) {
    if (t - last > gap.ms) gap = { ms: t - last, at: last };
    last = Math.max(last, t);
  }
  return { ms: Math.round(gap.ms), at: Math.round(gap.at) };
}

/** Requests (any outcome) that took `ms` or more. */
export function slow(samples: Sample[], ms = 1000): number {
  return samples.reduce((n, s) => n + (s[1] >= ms ? 1 : 0), 0);
}

/** p99 (nearest rank) latency per bucket of successful requests, for the timeline plot. */
export function timeline(samples: Sample[], bucketMs: number): Array<[number, number]> {
  const buckets = new Map<number, number[]>();
  for (const s of samples) {
    if (s[2] !== 'ok') continue;
    const b = Math.floor(s[0] / bucketMs) * bucketMs;
    const list = buckets.get(b);
    if (list) list.push(s[1]);
    else buckets.set(b, [s[1]]);
  }
  return [...buckets.entries()].sort((a, b) => a[0] - b[0]).map(([t, v]) => [t, percentile(v, 99)]);
}
