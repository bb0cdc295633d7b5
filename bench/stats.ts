// Summaries of latency samples. Pure: the benchmarks collect milliseconds, these turn them into the few numbers the
// table prints. Percentiles use the nearest-rank method, so with 20 samples p99 is the slowest one: a small sample
// never reports a p99 better than what was actually seen.

export interface Summary {
  n: number
  p50: number
  p99: number
  mean: number
  max: number
}

/** Nearest-rank percentile of an ascending array; NaN when empty. */
export function percentile (sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!
}

export function summarize (samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b)
  const sum = sorted.reduce((a, b) => a + b, 0)
  return {
    n: sorted.length,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    mean: sorted.length === 0 ? Number.NaN : sum / sorted.length,
    max: sorted.length === 0 ? Number.NaN : sorted[sorted.length - 1]!
  }
}

export function median (samples: readonly number[]): number {
  return percentile([...samples].sort((a, b) => a - b), 50)
}

/** Milliseconds since an arbitrary origin, sub-millisecond resolution. */
export function nowMs (): number {
  return Number(process.hrtime.bigint()) / 1e6
}

export function round (n: number, digits = 2): number {
  if (!Number.isFinite(n)) return n
  const f = 10 ** digits
  return Math.round(n * f) / f
}
