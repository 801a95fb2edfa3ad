/** bench/peers.ts' output: a table per workload, the JSON file (--json) and the SVG charts (--svg). */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { barChartSvg, type BarGroup } from '../svg-chart.ts';
import type { ToolResult } from './tools.ts';
import type { Backlog } from './workloads.ts';

/** One workload's measurements, as --json writes them. */
export interface WorkloadReport {
  readonly workload: string;
  readonly describe: string;
  /** Changes every tool delivered (the marker row included). */
  readonly changes: number;
  readonly walMb: number;
  readonly loadSeconds: number;
  readonly tools: readonly ToolFigures[];
}

/** One tool on one workload. */
export interface ToolFigures {
  readonly tool: string;
  readonly seconds: number;
  readonly rowsPerSecond: number;
  /** User + system CPU seconds of the tool's process per million changes. */
  readonly cpuSecondsPerMillion: number;
  readonly peakRssMb: number;
  /** rows/s over the reference's (pg_recvlogical; psql COPY for the snapshot). */
  readonly ratioToReference: number | null;
  readonly checked: string;
}

export function figures(backlog: Backlog, results: readonly ToolResult[]): WorkloadReport {
  const reference = results.find((r) => r.tool === 'pg_recvlogical');
  const rate = (r: ToolResult): number => (r.changes / r.ms) * 1000;
  return {
    workload: backlog.spec.name,
    describe: backlog.spec.describe,
    changes: backlog.expected,
    walMb: Number(backlog.walMb.toFixed(1)),
    loadSeconds: Number((backlog.loadMs / 1000).toFixed(2)),
    tools: results.map((r) => ({
      tool: r.label,
      seconds: Number((r.ms / 1000).toFixed(3)),
      rowsPerSecond: Math.round(rate(r)),
      cpuSecondsPerMillion: Number(((r.usage.cpuSeconds / r.changes) * 1e6).toFixed(2)),
      peakRssMb: Number((r.usage.maxRssKb / 1024).toFixed(1)),
      ratioToReference: reference === undefined ? null : Number((rate(r) / rate(reference)).toFixed(3)),
      checked: r.checked,
    })),
  };
}

const thousands = (n: number): string => Math.round(n).toLocaleString('en-US');

/** The workload's table, as printed (and as docs/benchmarks-peers.md shows it). */
export function table(report: WorkloadReport): string {
  const reference = report.workload === 'snapshot' ? 'psql COPY' : 'pg_recvlogical';
  const header = ['tool', 's', 'rows/s', 'CPU s / M rows', 'peak RSS MB', `x ${reference}`];
  const rows = report.tools.map((t) => [
    t.tool,
    t.seconds.toFixed(2),
    thousands(t.rowsPerSecond),
    t.cpuSecondsPerMillion.toFixed(1),
    thousands(t.peakRssMb),
    t.ratioToReference === null ? '-' : t.ratioToReference.toFixed(2),
  ]);
  const lines = [header, header.map(() => '---'), ...rows].map((cells) => `| ${cells.join(' | ')} |`);
  return (
    `${report.workload}: ${report.describe}; ${thousands(report.changes)} changes, ` +
    `${report.walMb.toFixed(0)} MB of WAL, loaded in ${report.loadSeconds.toFixed(1)} s\n\n${lines.join('\n')}\n`
  );
}

/** Geometric mean of pgcdc's rows/s over the reference's, over the stream workloads. */
export function pgcdcRatio(reports: readonly WorkloadReport[]): { ratio: number; workloads: number } | undefined {
  const ratios = reports
    .filter((r) => r.workload !== 'snapshot')
    .map((r) => r.tools.find((t) => t.tool === 'pgcdc')?.ratioToReference)
    .filter((r): r is number => typeof r === 'number' && r > 0);
  if (ratios.length === 0) return undefined;
  const ratio = Math.exp(ratios.reduce((sum, r) => sum + Math.log(r), 0) / ratios.length);
  return { ratio, workloads: ratios.length };
}

/**
 * Writes bench-peers-rows.svg (the stream workloads), bench-peers-snapshot.svg (the snapshot's
 * rows/s: COPY's scale would flatten every other bar), bench-peers-cpu.svg and bench-peers-rss.svg
 * into `dir`.
 */
export async function writeCharts(dir: string, reports: readonly WorkloadReport[]): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const groups = (value: (t: ToolFigures) => number, only = (_: WorkloadReport): boolean => true): BarGroup[] =>
    reports
      .filter(only)
      .map((r) => ({ label: r.workload, bars: r.tools.map((t) => ({ series: t.tool, value: value(t) })) }));
  const snapshot = (r: WorkloadReport): boolean => r.workload === 'snapshot';
  const charts = [
    {
      file: 'bench-peers-rows.svg',
      chart: {
        title: 'Changes drained per second, per tool and workload',
        unit: 'rows/s',
        groups: groups(
          (t) => t.rowsPerSecond,
          (r) => !snapshot(r),
        ),
      },
    },
    {
      file: 'bench-peers-snapshot.svg',
      chart: {
        title: 'Initial snapshot of a narrow table: rows per second',
        unit: 'rows/s',
        groups: groups((t) => t.rowsPerSecond, snapshot),
      },
    },
    {
      file: 'bench-peers-cpu.svg',
      chart: {
        title: 'CPU seconds (user + system) per million changes',
        unit: 's',
        groups: groups((t) => t.cpuSecondsPerMillion),
        format: (v: number) => v.toFixed(1),
      },
    },
    {
      file: 'bench-peers-rss.svg',
      chart: { title: 'Peak resident memory of the tool process', unit: 'MB', groups: groups((t) => t.peakRssMb) },
    },
  ];
  const written: string[] = [];
  for (const { file, chart } of charts) {
    const target = path.join(dir, file);
    await writeFile(target, barChartSvg(chart));
    written.push(target);
  }
  return written;
}
