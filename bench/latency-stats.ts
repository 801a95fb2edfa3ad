/** For bench/latency.ts: percentiles of per-change latencies, and whether the lag grew during a run. */

export interface Percentiles {
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentiles of `values` (NaN entries, changes never stamped, are left out). */
export function percentiles(values: readonly number[]): Percentiles {
  const sorted = Float64Array.from(values.filter((v) => !Number.isNaN(v))).sort();
  const at = (p: number): number =>
    sorted.length === 0 ? Number.NaN : (sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] ?? 0);
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: sorted[sorted.length - 1] ?? Number.NaN };
}

/** The lag in the middle of the offered load against its end (latencies in commit order). */
export interface LagTrend {
  /** Median and p95 latency of the changes committed in the middle fifth of the run (40 % .. 60 %), ms. */
  middleP50: number;
  middleP95: number;
  /** Median latency of the changes committed in the last tenth, ms. */
  endP50: number;
  /**
   * The end's median is over 1.5 times the middle's p95 plus 50 ms: the backlog grew while the load was
   * steady, so this rate is not sustained (a run that keeps up has the same latencies throughout; its
   * median moves within the spread the batch delay gives, e.g. 15 or 99 ms at 1k/s with a 100 ms delay,
   * depending on how commits fall against the timer, which the middle's p95 covers).
   */
  grew: boolean;
}

export function lagTrend(latencies: readonly number[]): LagTrend {
  const n = latencies.length;
  const middle = percentiles(latencies.slice(Math.floor(n * 0.4), Math.floor(n * 0.6)));
  const endP50 = percentiles(latencies.slice(Math.floor(n * 0.9))).p50;
  return { middleP50: middle.p50, middleP95: middle.p95, endP50, grew: !(endP50 <= middle.p95 * 1.5 + 50) };
}

export const ms = (value: number): string =>
  Number.isNaN(value) ? '-' : value < 10 ? value.toFixed(1) : Math.round(value).toLocaleString('en-US');
