/** Latency and throughput of one measured interval. */
export interface IntervalStats {
  /** Operations that completed inside the interval. */
  readonly calls: number;
  /** Operations that failed inside the interval. */
  readonly errors: number;
  /** Length of the interval in milliseconds. */
  readonly elapsedMs: number;
  /** Completed operations per second. */
  readonly callsPerSecond: number;
  /** Median latency in milliseconds. */
  readonly p50Ms: number;
  /** 99th percentile latency in milliseconds. */
  readonly p99Ms: number;
  /** The first error's message, to tell what went wrong without a log. */
  readonly firstError?: string;
}

/** The value below which `fraction` of the sorted samples lie (nearest rank). */
export function percentile(sorted: Float64Array | readonly number[], fraction: number): number {
  if (sorted.length === 0) {
    return Number.NaN;
  }
  const rank = Math.ceil(fraction * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))] as number;
}

/** The median of some numbers; the mean of the middle two for an even count. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  if (sorted.length === 0) {
    return Number.NaN;
  }
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** How a value spread over the rounds of a scenario: quartiles by linear interpolation. */
export interface Spread {
  readonly min: number;
  /** 25th percentile. */
  readonly q1: number;
  readonly median: number;
  /** 75th percentile. */
  readonly q3: number;
  readonly max: number;
}

/** The spread of some numbers; every field is NaN when there are none. */
export function spreadOf(values: readonly number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (fraction: number) => {
    if (sorted.length === 0) {
      return Number.NaN;
    }
    const position = fraction * (sorted.length - 1);
    const below = sorted[Math.floor(position)] as number;
    const above = sorted[Math.ceil(position)] as number;
    return below + (above - below) * (position - Math.floor(position));
  };
  return { min: at(0), q1: at(0.25), median: at(0.5), q3: at(0.75), max: at(1) };
}

/**
 * Runs `operation` from `concurrency` workers, back to back, until
 * `durationMs` have passed, and measures each call. Nothing is recorded when
 * `durationMs` is a warm-up, but the work is the same.
 */
export async function measureClosedLoop(
  concurrency: number,
  durationMs: number,
  operation: () => Promise<unknown>,
): Promise<IntervalStats> {
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const start = performance.now();
  const end = start + durationMs;
  const worker = async () => {
    while (performance.now() < end) {
      const t0 = performance.now();
      try {
        await operation();
        latencies.push(performance.now() - t0);
      } catch (error) {
        errors++;
        firstError ??= error instanceof Error ? error.message : String(error);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsedMs = performance.now() - start;
  const sorted = Float64Array.from(latencies).sort();
  return {
    calls: latencies.length,
    errors,
    elapsedMs,
    callsPerSecond: (latencies.length / elapsedMs) * 1000,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    ...(firstError === undefined ? {} : { firstError }),
  };
}
