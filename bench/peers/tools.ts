/**
 * The tools bench/peers.ts compares, each run alone on a workload's backlog under GNU time (CPU and
 * peak RSS from the kernel, bench/process-usage.ts), timed from spawn until it has every change
 * (durably, for those that write a file), and checked to have delivered the expected count.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, openSync, closeSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { EmbeddedCluster } from '../../src/embedded/cluster.ts';
import { parseLsn } from '../../src/protocol/lsn.ts';
import { countFileLines, countLines } from '../output.ts';
import { runPgcdc, startPgcdc } from '../pgcdc-process.ts';
import { spawnMeasured, type MeasuredChild, type ProcessUsage } from '../process-usage.ts';
import type { Backlog, WorkloadSpec } from './workloads.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const DEBEZIUM_POM = path.join(HERE, 'debezium/pom.xml');
const DEBEZIUM_TARGET = path.join(HERE, 'debezium/target');

/** The tools, as --tools names them. pg_recvlogical is the reference (psql's COPY for the snapshot workload). */
export const TOOLS = ['pg_recvlogical', 'pgcdc', 'pg-logical-replication', 'debezium'] as const;
export type Tool = (typeof TOOLS)[number];

/** One tool's run on one workload. */
export interface ToolResult {
  /** The tool as shown (the snapshot reference is `psql COPY`). */
  readonly label: string;
  readonly tool: Tool;
  readonly ms: number;
  readonly changes: number;
  readonly usage: ProcessUsage;
  /** How the delivered count was checked. */
  readonly checked: string;
}

export interface ToolRun {
  readonly cluster: EmbeddedCluster;
  readonly backlog: Backlog;
  /** A fresh directory for this tool's files. */
  readonly dir: string;
}

/** Whether `tool` has something to do on `spec` (the library has no snapshot). */
export function runsOn(tool: Tool, spec: WorkloadSpec): boolean {
  return spec.kind === 'stream' || tool !== 'pg-logical-replication';
}

function slotOf(backlog: Backlog, tool: Tool): string {
  const slot = backlog.slots.get(tool);
  if (slot === undefined) throw new Error(`bench: no slot for ${tool}`);
  return slot;
}

const expectCount = (label: string, got: number, expected: number): string => {
  if (got !== expected) throw new Error(`${label} delivered ${got} changes, expected ${expected}`);
  return `${got.toLocaleString('en-US')} lines`;
};

/** Resolves with the ms from spawn to the first stdout line starting with `done`; rejects on an early exit. */
function doneLine(measured: MeasuredChild, label: string): Promise<number> {
  let stderr = '';
  measured.child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    if (stderr.length > 20_000) stderr = stderr.slice(-20_000);
  });
  return new Promise((resolve, reject) => {
    let out = '';
    measured.child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (/^done /m.test(out)) resolve(performance.now() - measured.started);
    });
    void measured.exited.then((code) =>
      reject(new Error(`${label} exited with ${code} before it was done:\n${stderr}`)),
    );
  });
}

/**
 * The result of a tool that prints a `done` line once it has every change and writes one line per change into
 * `file`: timed to that line, its exit and its line count checked.
 */
async function countedResult(tool: Tool, measured: MeasuredChild, file: string, backlog: Backlog): Promise<ToolResult> {
  const ms = await doneLine(measured, tool);
  const code = await measured.exited;
  if (code !== 0) throw new Error(`${tool} exited with ${code}`);
  const lines = await countFileLines(file);
  return {
    label: tool,
    tool,
    ms,
    changes: backlog.expected,
    usage: await measured.usage(),
    checked: expectCount(tool, lines, backlog.expected),
  };
}

async function recvlogical(run: ToolRun): Promise<ToolResult> {
  const { cluster, backlog } = run;
  const slot = slotOf(backlog, 'pg_recvlogical');
  const measured = spawnMeasured(
    process.env.PG_RECVLOGICAL ?? 'pg_recvlogical',
    [
      '-d',
      `host=127.0.0.1 port=${cluster.port} user=postgres dbname=${backlog.database}`,
      '--slot',
      slot,
      '--start',
      '--no-loop',
      '-o',
      'proto_version=1',
      '-o',
      `publication_names=${backlog.publication}`,
      `--endpos=${backlog.endLsn}`,
      '-f',
      '/dev/null',
    ],
    path.join(run.dir, 'time'),
    { env: { ...process.env, PGPASSWORD: cluster.password }, stdio: ['ignore', 'inherit', 'inherit'] },
  );
  const code = await measured.exited;
  const ms = performance.now() - measured.started;
  if (code !== 0)
    throw new Error(
      `pg_recvlogical exited with ${code} (127: not installed; Debian: apt-get install postgresql-client)`,
    );
  // Its output is binary pgoutput in /dev/null: what shows it read everything is that it stopped at
  // --endpos, which it only does once it received a record at or past it.
  const client = new pg.Client({ connectionString: cluster.url(backlog.database) });
  await client.connect();
  const flushed = (
    await client.query<{ lsn: string | null }>(
      'select confirmed_flush_lsn::text as lsn from pg_replication_slots where slot_name = $1',
      [slot],
    )
  ).rows[0]?.lsn;
  await client.end();
  if (flushed === null || flushed === undefined || parseLsn(flushed) < parseLsn(backlog.threshold))
    throw new Error(`pg_recvlogical stopped before the marker: its slot confirmed ${flushed}`);
  return {
    label: 'pg_recvlogical',
    tool: 'pg_recvlogical',
    ms,
    changes: backlog.expected,
    usage: await measured.usage(),
    checked: `stopped at --endpos (slot confirmed ${flushed})`,
  };
}

/** The snapshot reference: `psql -c 'copy <table> to stdout'` into /dev/null. */
async function copyReference(run: ToolRun): Promise<ToolResult> {
  const { cluster, backlog } = run;
  const devNull = openSync('/dev/null', 'w');
  const table = backlog.spec.tables[0]!;
  const measured = spawnMeasured(
    'psql',
    [
      '-h',
      '127.0.0.1',
      '-p',
      String(cluster.port),
      '-U',
      'postgres',
      '-d',
      backlog.database,
      '-X',
      '-q',
      '-c',
      `copy ${table} to stdout`,
    ],
    path.join(run.dir, 'time'),
    {
      env: { ...process.env, PGPASSWORD: cluster.password, PGSSLMODE: 'disable' },
      stdio: ['ignore', devNull, 'inherit'],
    },
  );
  const code = await measured.exited;
  const ms = performance.now() - measured.started;
  closeSync(devNull);
  if (code !== 0) throw new Error(`psql exited with ${code}`);
  return {
    label: 'psql COPY',
    tool: 'pg_recvlogical',
    ms,
    changes: backlog.expected,
    usage: await measured.usage(),
    checked: 'COPY of the whole table',
  };
}

async function pgcdc(run: ToolRun): Promise<ToolResult> {
  const { cluster, backlog, dir } = run;
  const events = path.join(dir, 'events');
  const tables = [...backlog.spec.tables, ...(backlog.spec.kind === 'stream' ? ['bench_end'] : [])]
    .map((t) => `public.${t}`)
    .join(',');
  const options = {
    cluster,
    database: backlog.database,
    sink: ['--out', events],
    publication: backlog.publication,
    tables,
    prefix: backlog.database,
    workDir: dir,
    usageFile: path.join(dir, 'time'),
  };
  let ms: number;
  let usage: ProcessUsage | undefined;
  if (backlog.spec.kind === 'stream') {
    const result = await runPgcdc({ ...options, slot: slotOf(backlog, 'pgcdc'), threshold: backlog.threshold });
    ms = result.totalMs;
    usage = result.usage;
  } else {
    // initial_only: reads the tables and exits 0 (no slot, no stream).
    const running = await startPgcdc({ ...options, slot: 'unused', snapshotMode: 'initial_only' });
    const code = await running.exited;
    ms = performance.now() - running.started;
    if (code !== 0) throw new Error(`pgcdc --snapshot-mode initial_only exited with ${code}:\n${running.stderr()}`);
    usage = await running.usage?.();
  }
  if (usage === undefined) throw new Error('bench: pgcdc ran without GNU time');
  const lines = await countLines(events);
  return {
    label: 'pgcdc',
    tool: 'pgcdc',
    ms,
    changes: backlog.expected,
    usage,
    checked: expectCount('pgcdc', lines, backlog.expected),
  };
}

async function pgLogicalReplication(run: ToolRun): Promise<ToolResult> {
  const { cluster, backlog, dir } = run;
  const file = path.join(dir, 'events.jsonl');
  const measured = spawnMeasured(
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(HERE, 'pg-logical-replication.ts'),
      slotOf(backlog, 'pg-logical-replication'),
      backlog.publication,
      file,
      String(backlog.expected),
    ],
    path.join(dir, 'time'),
    {
      cwd: ROOT,
      env: {
        ...process.env,
        PGHOST: '127.0.0.1',
        PGPORT: String(cluster.port),
        PGUSER: 'postgres',
        PGPASSWORD: cluster.password,
        PGDATABASE: backlog.database,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  return countedResult('pg-logical-replication', measured, file, backlog);
}

let debeziumBuilt = false;
/** Builds the Debezium harness and copies its jars (Maven Central), once per bench run. */
export function buildDebezium(): void {
  if (debeziumBuilt) return;
  const result = spawnSync(
    'mvn',
    ['-q', '-B', '-f', DEBEZIUM_POM, 'package', 'dependency:copy-dependencies', '-DskipTests'],
    { stdio: 'inherit' },
  );
  if (result.error !== undefined)
    throw new Error(`bench: mvn could not run (Debian: apt-get install maven): ${result.error.message}`);
  if (result.status !== 0) throw new Error('bench: building the Debezium harness failed');
  if (!existsSync(path.join(DEBEZIUM_TARGET, 'debezium-bench-1.jar')))
    throw new Error('bench: no Debezium harness jar');
  debeziumBuilt = true;
}

async function debezium(run: ToolRun): Promise<ToolResult> {
  const { cluster, backlog, dir } = run;
  buildDebezium();
  const stream = backlog.spec.kind === 'stream';
  const properties = {
    name: 'pgcdc-bench',
    'connector.class': 'io.debezium.connector.postgresql.PostgresConnector',
    'offset.storage': 'org.apache.kafka.connect.storage.FileOffsetBackingStore',
    'offset.storage.file.filename': path.join(dir, 'offsets.dat'),
    'offset.flush.interval.ms': '1000',
    'database.hostname': '127.0.0.1',
    'database.port': String(cluster.port),
    'database.user': 'postgres',
    'database.password': cluster.password,
    'database.dbname': backlog.database,
    'database.sslmode': 'disable',
    'topic.prefix': backlog.database,
    'plugin.name': 'pgoutput',
    // Streaming: the bench's slot, made before the backlog. Snapshot: Debezium creates its own.
    'slot.name': stream ? slotOf(backlog, 'debezium') : `${backlog.database}_debezium`,
    'publication.name': backlog.publication,
    'publication.autocreate.mode': 'disabled',
    'snapshot.mode': stream ? 'no_data' : 'initial',
    'converter.schemas.enable': 'false',
    // pgcdc's batch.maxDelayMs; the engine's batch size stays at its default (max.batch.size 2048).
    'poll.interval.ms': '100',
  };
  const file = path.join(dir, 'debezium.properties');
  await writeFile(
    file,
    Object.entries(properties)
      .map(([key, value]) => `${key}=${value.replace(/\\/g, '\\\\')}`)
      .join('\n') + '\n',
    { mode: 0o600 },
  );
  const out = path.join(dir, 'events.jsonl');
  const classpath = [path.join(DEBEZIUM_TARGET, 'debezium-bench-1.jar'), path.join(DEBEZIUM_TARGET, 'lib/*')].join(':');
  const measured = spawnMeasured(
    'java',
    [
      '-Dorg.slf4j.simpleLogger.defaultLogLevel=warn',
      '-cp',
      classpath,
      'dev.pgcdc.bench.DebeziumBench',
      file,
      out,
      String(backlog.expected),
    ],
    path.join(dir, 'time'),
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return countedResult('debezium', measured, out, backlog);
}

/** Runs `tool` on the backlog. */
export function runTool(tool: Tool, run: ToolRun): Promise<ToolResult> {
  switch (tool) {
    case 'pg_recvlogical':
      return run.backlog.spec.kind === 'stream' ? recvlogical(run) : copyReference(run);
    case 'pgcdc':
      return pgcdc(run);
    case 'pg-logical-replication':
      return pgLogicalReplication(run);
    case 'debezium':
      return debezium(run);
  }
}
