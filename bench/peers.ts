/**
 * pgcdc against its peers on the same workloads, on the same machine, in the same run:
 *
 *   npm run bench:peers -- [--workloads narrow,pgbench,wide,toast,jsonb,small-tx,huge-tx,snapshot]
 *     [--tools pg_recvlogical,pgcdc,pg-logical-replication,debezium] [--rows 500000] [--pg 18]
 *     [--json <file>] [--svg <dir>] [--keep]
 *
 * - pg_recvlogical (pgoutput into /dev/null): the reference, the walsender's own speed.
 * - pgcdc: the real CLI into fsynced JSONL (bench/pgcdc-process.ts).
 * - pg-logical-replication: the npm library, its PgoutputPlugin into a JSONL file fdatasynced per
 *   batch (bench/peers/pg-logical-replication.ts).
 * - Debezium's embedded engine 3.6.1.Final, JSON into a file fdatasynced per batch
 *   (bench/peers/debezium/, built here with Maven).
 *
 * Each workload (bench/peers/workloads.ts) writes its backlog once after one slot per tool was
 * created at the same LSN; the tools then drain it one after the other (so they do not share the
 * cores), each under GNU time for its CPU and peak RSS (bench/peers/tools.ts). The `snapshot`
 * workload compares initial snapshots of a loaded table instead, against `psql -c 'copy ... to
 * stdout'`. --rows sizes every workload (narrow and huge-tx write that many rows; the others
 * fewer: see `changes` in workloads.ts).
 *
 * --keep keeps every tool's output (and the tools' files) in the work directory it prints.
 *
 * The last line is `ratio <geometric mean over the stream workloads of pgcdc rows/s / pg_recvlogical rows/s>`.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import type { EmbeddedCluster } from '../src/embedded/cluster.ts';
import { withBenchCluster } from './bench-cluster.ts';
import { wholeNumber } from './flags.ts';
import { timeAvailable } from './process-usage.ts';
import { figures, pgcdcRatio, table, writeCharts, type WorkloadReport } from './peers/report.ts';
import { buildDebezium, runsOn, runTool, TOOLS, type Tool } from './peers/tools.ts';
import { dropBacklog, prepareBacklog, WORKLOADS, type WorkloadSpec } from './peers/workloads.ts';

const { values: flags } = parseArgs({
  options: {
    workloads: { type: 'string', default: WORKLOADS.map((w) => w.name).join(',') },
    tools: { type: 'string', default: TOOLS.join(',') },
    rows: { type: 'string', default: '500000' },
    pg: { type: 'string', default: '18' },
    json: { type: 'string' },
    svg: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});

function pick<T>(list: string, known: readonly T[], name: (t: T) => string, flag: string): T[] {
  const wanted = list
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  const unknown = wanted.filter((w) => !known.some((k) => name(k) === w));
  if (unknown.length > 0 || wanted.length === 0) {
    process.stderr.write(`bench: ${flag} takes some of ${known.map(name).join(',')}; not ${unknown.join(',')}\n`);
    process.exit(2);
  }
  // In the bench's own order (the reference first), whatever the order given.
  return known.filter((k) => wanted.includes(name(k)));
}

const ROWS = wholeNumber(flags.rows, '--rows');
const MAJOR = wholeNumber(flags.pg, '--pg');
const SELECTED_WORKLOADS: WorkloadSpec[] = pick(flags.workloads, WORKLOADS, (w) => w.name, '--workloads');
const SELECTED_TOOLS: Tool[] = pick(flags.tools, TOOLS, (t) => t, '--tools');

/** The machine the run was on, as the --json report gives it. */
interface Host {
  readonly nproc: number;
  readonly cpu: string;
}

function machine(): Host {
  const lscpu = spawnSync('lscpu', { encoding: 'utf8' }).stdout ?? '';
  const model = /^Model name:\s*(.+)$/m.exec(lscpu)?.[1]?.trim() ?? cpus()[0]?.model ?? '?';
  const nproc = Number(spawnSync('nproc', { encoding: 'utf8' }).stdout?.trim()) || cpus().length;
  return { nproc, cpu: model };
}

async function main(): Promise<void> {
  if (!timeAvailable()) {
    process.stderr.write('bench: /usr/bin/time is missing (Debian: apt-get install time); it measures CPU and RSS\n');
    process.exit(1);
  }
  // Before any timing: Maven fetches and compiles the harness on a clean clone.
  if (SELECTED_TOOLS.includes('debezium')) buildDebezium();
  const host = machine();
  await withBenchCluster({ prefix: 'pgcdc-bench-peers-', major: MAJOR, keep: flags.keep }, (cluster, workDir) =>
    compareTools(cluster, workDir, host),
  );
}

/** Runs every selected tool on every selected workload; prints and writes the reports and the ratio. */
async function compareTools(cluster: EmbeddedCluster, workDir: string, host: Host): Promise<void> {
  const reports: WorkloadReport[] = [];
  const client = new pg.Client({ connectionString: cluster.url('postgres') });
  await client.connect();
  const version =
    (await client.query<{ v: string }>("select current_setting('server_version') as v")).rows[0]?.v ?? '?';
  await client.end();
  console.log(
    `PostgreSQL ${version}, ${host.nproc} cores (${host.cpu}); --rows ${ROWS.toLocaleString('en-US')}; ` +
      `tools: ${SELECTED_TOOLS.join(', ')}`,
  );
  for (const spec of SELECTED_WORKLOADS) {
    const tools = SELECTED_TOOLS.filter((tool) => runsOn(tool, spec));
    const backlog = await prepareBacklog(cluster, spec, ROWS, spec.kind === 'stream' ? tools : []);
    console.log(
      `\n${spec.name}: ${backlog.expected.toLocaleString('en-US')} changes, ${backlog.walMb.toFixed(0)} MB of WAL, ` +
        `loaded in ${(backlog.loadMs / 1000).toFixed(1)} s`,
    );
    const results = [];
    for (const tool of tools) {
      const dir = path.join(workDir, spec.name, tool);
      await mkdir(dir, { recursive: true });
      const result = await runTool(tool, { cluster, backlog, dir });
      console.log(
        `  ${result.label.padEnd(24)}${(result.ms / 1000).toFixed(2).padStart(8)} s  ` +
          `${Math.round((result.changes / result.ms) * 1000)
            .toLocaleString('en-US')
            .padStart(10)} rows/s  (${result.checked})`,
      );
      results.push(result);
      // Its output can be large (toast): not kept beyond the check, unless --keep.
      if (!flags.keep) await rm(dir, { recursive: true, force: true });
    }
    const report = figures(backlog, results);
    reports.push(report);
    console.log(`\n${table(report)}`);
    await dropBacklog(cluster, backlog);
    // After each workload, so a run that fails later keeps what it measured.
    if (flags.json !== undefined) {
      const document = {
        machine: host,
        postgres: version,
        rows: ROWS,
        at: new Date().toISOString(),
        workloads: reports,
      };
      await writeFile(flags.json, `${JSON.stringify(document, null, 2)}\n`);
    }
  }
  if (flags.json !== undefined) console.log(`results: ${flags.json}`);
  if (flags.svg !== undefined) console.log(`charts: ${(await writeCharts(flags.svg, reports)).join(', ')}`);
  const summary = pgcdcRatio(reports);
  if (summary !== undefined) {
    console.log(`pgcdc rows/s / pg_recvlogical rows/s, geometric mean over ${summary.workloads} stream workloads:`);
    console.log(`ratio ${summary.ratio.toFixed(2)}`);
  }
}

await main();
