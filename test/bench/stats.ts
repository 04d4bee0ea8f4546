/** Small statistics over the load generator's samples: [t ms, latency ms, outcome, generation]. */
export type Sample = [number, number, string, number];

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export function median(values: number[]): number {
  return percentile(values, 50);
}

export interface Latency {
  p50: number;
  p99: number;
  max: number;
}

export function latency(samples: Sample[]): Latency {
  const ok = samples.filter((s) => s[2] === 'ok').map((s) => s[1]);
  const round = (n: number) => Math.round(n * 100) / 100;
  return { p50: round(percentile(ok, 50)), p99: round(percentile(ok, 99)), max: round(Math.max(0, ...ok)) };
}

/** The samples of the second after each mark (ms since the load started). */
export function afterMarks(samples: Sample[], marks: number[], windowMs = 1000): Sample[] {
  return samples.filter((s) => marks.some((m) => s[0] >= m && s[0] < m + windowMs));
}

/** p99 latency per bucket, for the timeline plot. */
export function timeline(samples: Sample[], bucketMs: number): Array<[number, number]> {
  const buckets = new Map<number, number[]>();
  for (const s of samples) {
    if (s[2] !== 'ok') continue;
    const b = Math.floor(s[0] / bucketMs) * bucketMs;
    buckets.set(b, [...(buckets.get(b) ?? []), s[1]]);
  }
  return [...buckets.entries()].sort((a, b) => a[0] - b[0]).map(([t, v]) => [t, percentile(v, 99)]);
}
