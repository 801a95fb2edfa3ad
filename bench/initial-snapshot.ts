/**
 * What the snapshot and verify benches share: connections to the bench database, the narrow table
 * both load, the `COPY ... TO STDOUT` reference, and pgcdc's own initial snapshot into JSONL with
 * its checkpoints in a real offsets file (the product path, driven without the CLI).
 */
import { createWriteStream, readFileSync } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import type { EmbeddedCluster } from '../src/embedded/cluster.ts';
import { SESSION_OPTIONS, resolveEndpoint } from '../src/postgres/connect.ts';
import { loadPgTypes } from '../src/postgres/pg-types.ts';
import { resolveTables } from '../src/postgres/catalog.ts';
import { formatLsn } from '../src/protocol/lsn.ts';
import { JsonlSink } from '../src/sinks/jsonl/jsonl.ts';
import { StdoutSink } from '../src/sinks/stdout/stdout.ts';
import { UNAVAILABLE_VALUE } from '../src/envelope/json.ts';
import { createSlotWithSnapshot } from '../src/postgres/exported-snapshot.ts';
import { takeInitialSnapshot } from '../src/snapshot/initial.ts';
import { FileOffsetStore } from '../src/offsets/file.ts';
import { parseConfig } from '../src/config.ts';
import { createLogger } from '../src/core/log.ts';
import { copyOut } from '../src/postgres/copy-out.ts';

/** The database every bench table lives in. */
export const BENCH_DATABASE = 'bench';

export const rowsPerSecond = (rows: number, ms: number): number => (rows / ms) * 1000;
export const showRate = (rate: number): string => `${Math.round(rate).toLocaleString('en-US')} rows/s`;
export const seconds = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

/** A client of the bench database, with pgcdc's session options; `replication` for a walsender. */
export async function benchConnect(cluster: EmbeddedCluster, replication = false): Promise<pg.Client> {
  const config: pg.ClientConfig & { replication?: string } = {
    connectionString: cluster.url(BENCH_DATABASE),
    options: SESSION_OPTIONS,
  };
  if (replication) config.replication = 'database';
  const client = new pg.Client(config);
  await client.connect();
  return client;
}

/** Creates `table` in the narrow shape of bench/stream.ts with rows `first..last`, analyzed. */
export async function createNarrowTable(client: pg.Client, table: string, first: number, last: number): Promise<void> {
  await client.query(`create table ${table} (id bigint primary key, v integer not null, t text not null)`);
  await client.query(
    `insert into ${table} select g, (g * 7919) % 1000003, substr(md5(g::text), 1, 8) from ` +
      `generate_series($1::bigint, $2::bigint) g`,
    [first, last],
  );
  await client.query(`vacuum analyze ${table}`);
}

/** `COPY <table> TO STDOUT` into /dev/null: the reference. Returns elapsed ms. */
export async function copyToDevNull(cluster: EmbeddedCluster, table: string): Promise<number> {
  const client = await benchConnect(cluster);
  try {
    const started = performance.now();
    await pipeline(client.query(copyTo(`COPY ${table} TO STDOUT`)), createWriteStream('/dev/null'));
    return performance.now() - started;
  } finally {
    await client.end();
  }
}

/**
 * What PostgreSQL alone gives the readers' way of reading: the table in keyed chunks of `chunkRows`
 * (each end found by the same index walk, then `COPY (SELECT ... WHERE id > a AND id <= b ORDER BY
 * id) TO STDOUT` through postgres/copy-out.ts), one connection, nothing done with the bytes. Returns
 * the ms.
 */
export async function keyedChunksMs(cluster: EmbeddedCluster, table: string, chunkRows: number): Promise<number> {
  const client = await benchConnect(cluster);
  try {
    const started = performance.now();
    for (let after = 0; ;) {
      const end = await client.query<{ id: string }>(
        `SELECT id FROM ${table} WHERE id > ${after} ORDER BY id OFFSET ${chunkRows - 1} LIMIT 1`,
      );
      const upTo = end.rows[0]?.id;
      const range = upTo === undefined ? '' : ` AND id <= ${upTo}`;
      await copyOut(client, `COPY (SELECT id, v, t FROM ${table} WHERE id > ${after}${range} ORDER BY id) TO STDOUT`);
      if (upTo === undefined) return performance.now() - started;
      after = Number(upTo);
    }
  } finally {
    await client.end();
  }
}

/** The machine's CPU time (all cores, every process) from /proc/stat: busy and total jiffies. */
export function machineCpu(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0] ?? '';
  const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = ticks.reduce((a, b) => a + b, 0);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
  return { busy: total - idle, total };
}

/** The share of the machine's CPU time that was busy since `from` (machineCpu). */
export function busySince(from: { busy: number; total: number }): number {
  const now = machineCpu();
  return (now.busy - from.busy) / Math.max(1, now.total - from.total);
}

export interface SnapshotIntoJsonl {
  /** Tables of schema public to read. */
  readonly tables: readonly string[];
  readonly workers: number;
  readonly chunkRows: number;
  readonly major: number;
  /** The slot created with the exported snapshot (left in place: the caller drops or keeps it). */
  readonly slot: string;
  /** Where `events/` and `offsets.json` go. */
  readonly dir: string;
  /** jsonl (default): fsynced files in `dir/events`; stdout: the stdout sink writing into /dev/null. */
  readonly sink?: 'jsonl' | 'stdout';
  /** snapshot.threads (serializer threads); absent: the default, one per reader. */
  readonly threads?: number;
  /** envelope.type (default debezium). */
  readonly envelope?: 'debezium' | 'flat';
}

/**
 * Runs the product's initial snapshot (snapshot/initial.ts: the reader, the serializer, the JSONL
 * sink, a checkpoint per chunk) and stores the final checkpoint as done. Returns the ms from the
 * start of the read to the last durable chunk (the final checkpoint not included).
 */
export async function snapshotIntoJsonl(cluster: EmbeddedCluster, run: SnapshotIntoJsonl): Promise<number> {
  const replication = await benchConnect(cluster, true);
  const catalog = await benchConnect(cluster);
  const offsets = await FileOffsetStore.open(path.join(run.dir, 'offsets.json'));
  try {
    const config = parseConfig({
      source: { url: cluster.url(BENCH_DATABASE) },
      snapshot: {
        chunkSize: run.chunkRows,
        parallelism: run.workers,
        progress: 'off',
        ...(run.threads === undefined ? {} : { threads: run.threads }),
      },
      envelope: { type: run.envelope ?? 'debezium' },
      log: { level: 'warn' },
    });
    const types = await loadPgTypes(catalog);
    const refs = await resolveTables(
      catalog,
      run.tables.map((table) => ({ schema: 'public', table })),
    );
    const exported = await createSlotWithSnapshot(replication, run.slot);
    const sink =
      run.sink === 'stdout'
        ? new StdoutSink({ stream: createWriteStream('/dev/null') })
        : new JsonlSink({ dir: path.join(run.dir, 'events') });
    await sink.open(undefined);
    const identity = {
      version: 2 as const,
      systemId: '1',
      timeline: 1,
      database: BENCH_DATABASE,
      slot: run.slot,
      publication: 'bench',
      lsn: formatLsn(exported.consistentPoint),
    };
    const started = performance.now();
    const result = await takeInitialSnapshot({
      exported,
      tables: refs,
      config,
      endpoint: resolveEndpoint(config.source),
      major: run.major,
      types,
      naming: {
        prefix: BENCH_DATABASE,
        database: BENCH_DATABASE,
        naming: 'prefix',
        envelope: { format: 'json', unavailableValue: UNAVAILABLE_VALUE, type: run.envelope ?? 'debezium' },
      },
      sink,
      log: createLogger({ level: 'warn', format: 'json' }),
      checkpoint: (position, list) =>
        offsets.commit({
          ...identity,
          sink: position,
          updatedAt: new Date().toISOString(),
          snapshot: { state: 'running', tables: list },
        }),
    });
    const elapsed = performance.now() - started;
    if (result.position === undefined) throw new Error('the snapshot wrote nothing');
    await offsets.commit({
      ...identity,
      sink: result.position,
      updatedAt: new Date().toISOString(),
      snapshot: { state: 'done' },
    });
    await sink.close();
    return elapsed;
  } finally {
    await offsets.close();
    await replication.end().catch(() => undefined);
    await catalog.end().catch(() => undefined);
  }
}
