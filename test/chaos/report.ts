/**
 * The chaos table: per scenario, iterations, the verdict of the replay (lost, extra, mismatched,
 * duplicated rows) and the recovery times (p50 / p95 / max), as Markdown or as JSON.
 */
import type { ScenarioResult } from './scenarios.ts';

/** Nearest-rank percentile of `values` (p in 0..100); undefined when empty. */
export function percentile(values: readonly number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export interface Spread {
  p50: number | undefined;
  p95: number | undefined;
  max: number | undefined;
}

export function spread(values: readonly number[]): Spread {
  return { p50: percentile(values, 50), p95: percentile(values, 95), max: percentile(values, 100) };
}

/** What `--json` prints for one scenario. */
export interface ScenarioSummary {
  scenario: string;
  /** Set when the scenario did not run here, with the reason. */
  skipped?: string;
  /** Set when the scenario failed (an iteration did not recover, say). */
  failed?: string;
  iterations: number;
  lost: number;
  extra: number;
  expectedExtra: number;
  mismatched: number;
  duplicated: number;
  events: number;
  /** The first few differences found by the replay. */
  samples: string[];
  /** Iterations after which pgcdc started its stream again (the others never lost it). */
  reconnected: number;
  unplannedExits: number[];
  /** The last stderr line of each process that exited by itself (distinct lines). */
  exitLines?: string[];
  recoveryMs: Spread;
  deliveredMs: Spread;
  details?: ScenarioResult['iterations'];
}

export function summarize(result: ScenarioResult): ScenarioSummary {
  return {
    scenario: result.scenario,
    iterations: result.iterations.length,
    ...result.verdict,
    reconnected: result.iterations.filter((i) => i.reconnected).length,
    unplannedExits: result.unplannedExits,
    exitLines: [...new Set(result.exitLines)],
    recoveryMs: spread(result.iterations.map((i) => i.recoveryMs)),
    deliveredMs: spread(result.iterations.map((i) => i.deliveredMs)),
    details: result.iterations,
  };
}

const ms = (s: Spread): string => (s.p50 === undefined ? '-' : `${s.p50} / ${s.p95 ?? '-'} / ${s.max ?? '-'}`);

const exits = (codes: readonly number[]): string =>
  codes.length === 0 ? '0' : `${codes.length} (exit ${[...new Set(codes)].join(', ')})`;

/** The Markdown table of the run. */
export function table(summaries: readonly ScenarioSummary[]): string {
  const lines = [
    '| scenario | iterations | lost | extra | gap extras | mismatched | duplicated | events | reconnected | ' +
      'unplanned exits | recovery ms p50 / p95 / max | change delivered ms p50 / p95 / max |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const s of summaries) {
    if (s.skipped !== undefined || s.failed !== undefined) {
      lines.push(
        `| ${s.scenario} | ${s.skipped !== undefined ? `skipped: ${s.skipped}` : `FAILED: ${s.failed}`} |||||||||||`,
      );
      continue;
    }
    lines.push(
      `| ${s.scenario} | ${s.iterations} | ${s.lost} | ${s.extra} | ${s.expectedExtra} | ${s.mismatched} | ` +
        `${s.duplicated} | ${s.events} | ${s.reconnected} | ${exits(s.unplannedExits)} | ${ms(s.recoveryMs)} | ` +
        `${ms(s.deliveredMs)} |`,
    );
  }
  return lines.join('\n');
}
