/**
 * Snapshot throughput: pgcdc's snapshot reader into fsynced JSONL against `COPY t TO STDOUT`, on
 * the same machine in the same run.
 *
 *   npm run bench:snapshot -- [--rows 1000000] [--chunk 20000] [--workers 2] [--pg 18]
 *
 * - Reference: `COPY bench TO STDOUT` through pg-copy-streams, drained into /dev/null: the
 *   server's fastest way to hand out a table, and the transport the snapshot reader uses.
 * - pgcdc, one worker: a slot created with EXPORT_SNAPSHOT, then the product's initial snapshot
 *   (snapshot/initial.ts) reading the table in keyset chunks of --chunk rows into the real
 *   JsonlSink (fdatasync per write) with its progress stored in a real offsets file, as `pgcdc run`
 *   does. Timed from the start of the read (the snapshot import included) to the last durable
 *   write and checkpoint. The output line count must equal --rows.
 * - pgcdc, --workers workers: the same rows split over --workers tables (the reader parallelises
 *   across tables), read at once.
 *
 * The last line is `ratio <pgcdc one worker rows/s / COPY rows/s>`.
 */
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { EmbeddedCluster } from '../src/embedded/cluster.ts';
import { SESSION_OPTIONS, resolveEndpoint } from '../src/postgres/connect.ts';
import { loadPgTypes } from '../src/postgres/pg-types.ts';
import { resolveTables } from '../src/postgres/catalog.ts';
import { formatLsn } from '../src/protocol/lsn.ts';
import { JsonlSink } from '../src/sinks/jsonl/jsonl.ts';
import { createSlotWithSnapshot } from '../src/postgres/exported-snapshot.ts';
import { takeInitialSnapshot } from '../src/snapshot/initial.ts';
import { FileOffsetStore } from '../src/offsets/file.ts';
import { parseConfig } from '../src/config.ts';
import { createLogger } from '../src/core/log.ts';
import { wholeNumber } from './flags.ts';
import { countLines } from './output.ts';

const DATABASE = 'bench';

const { values: flags } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    chunk: { type: 'string', default: '20000' },
    workers: { type: 'string', default: '2' },
    pg: { type: 'string', default: '18' },
  },
});

const ROWS = wholeNumber(flags.rows, '--rows');
const CHUNK = wholeNumber(flags.chunk, '--chunk');
const WORKERS = wholeNumber(flags.workers, '--workers');
const MAJOR = wholeNumber(flags.pg, '--pg');

const rate = (rows: number, ms: number): number => (rows / ms) * 1000;
const show = (rowsPerSecond: number): string => `${Math.round(rowsPerSecond).toLocaleString('en-US')} rows/s`;
const seconds = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

async function connect(cluster: EmbeddedCluster, replication = false): Promise<pg.Client> {
  const config: pg.ClientConfig & { replication?: string } = {
    connectionString: cluster.url(DATABASE),
    options: SESSION_OPTIONS,
  };
  if (replication) config.replication = 'database';
  const client = new pg.Client(config);
  await client.connect();
  return client;
}

/** The same narrow shape as bench/stream.ts. */
async function load(client: pg.Client, table: string, first: number, last: number): Promise<void> {
  await client.query(`create table ${table} (id bigint primary key, v integer not null, t text not null)`);
  await client.query(
    `insert into ${table} select g, (g * 7919) % 1000003, substr(md5(g::text), 1, 8) from ` +
      `generate_series($1::bigint, $2::bigint) g`,
    [first, last],
  );
  await client.query(`vacuum analyze ${table}`);
}

async function copyReference(cluster: EmbeddedCluster): Promise<number> {
  const client = await connect(cluster);
  try {
    const started = performance.now();
    await pipeline(client.query(copyTo('COPY bench TO STDOUT')), createWriteStream('/dev/null'));
    return performance.now() - started;
  } finally {
    await client.end();
  }
}

/**
 * Runs the product's initial snapshot (snapshot/initial.ts: the reader, the serializer, the
 * JSONL sink and a checkpoint stored in a real offsets file) over `tables` with `workers` workers
 * into a fresh directory; returns elapsed ms.
 */
async function runPgcdc(
  cluster: EmbeddedCluster,
  tables: readonly string[],
  workers: number,
  slot: string,
): Promise<number> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-bench-snapshot-'));
  const replication = await connect(cluster, true);
  const catalog = await connect(cluster);
  const offsets = await FileOffsetStore.open(path.join(dir, 'offsets.json'));
  try {
    const config = parseConfig({
      source: { url: cluster.url(DATABASE) },
      snapshot: { chunkSize: CHUNK, parallelism: workers, progress: 'off' },
      log: { level: 'warn' },
    });
    const endpoint = resolveEndpoint(config.source);
    const types = await loadPgTypes(catalog);
    const refs = await resolveTables(
      catalog,
      tables.map((table) => ({ schema: 'public', table })),
    );
    const exported = await createSlotWithSnapshot(replication, slot);
    const sink = new JsonlSink({ dir: path.join(dir, 'events') });
    await sink.open(undefined);
    const identity = {
      version: 2 as const,
      systemId: '1',
      timeline: 1,
      database: DATABASE,
      slot,
      publication: 'bench',
    };
    const lsn = formatLsn(exported.consistentPoint);
    const started = performance.now();
    await takeInitialSnapshot({
      exported,
      tables: refs,
      config,
      endpoint,
      major: MAJOR,
      types,
      naming: { prefix: DATABASE, database: DATABASE, naming: 'prefix' },
      sink,
      log: createLogger({ level: 'warn', format: 'json' }),
      checkpoint: (position, list) =>
        offsets.commit({
          ...identity,
          lsn,
          sink: position,
          updatedAt: new Date().toISOString(),
          snapshot: { state: 'running', tables: list },
        }),
    });
    const elapsed = performance.now() - started;
    await sink.close();
    const lines = await countLines(path.join(dir, 'events'));
    if (lines !== ROWS) throw new Error(`pgcdc wrote ${lines} lines, expected ${ROWS}`);
    await catalog.query('select pg_drop_replication_slot($1)', [slot]).catch(() => undefined);
    return elapsed;
  } finally {
    await offsets.close();
    await replication.end().catch(() => undefined);
    await catalog.end().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const cluster = await EmbeddedCluster.start({
    major: MAJOR,
    settings: { shared_buffers: '512MB', autovacuum: 'off' },
  });
  try {
    const admin = new pg.Client({ connectionString: cluster.url('postgres') });
    await admin.connect();
    await admin.query(`create database ${DATABASE}`);
    await admin.end();
    const client = await connect(cluster);
    const version =
      (await client.query<{ v: string }>("select current_setting('server_version') as v")).rows[0]?.v ?? '?';
    const loadStarted = performance.now();
    await load(client, 'bench', 1, ROWS);
    const parts: string[] = [];
    const per = Math.ceil(ROWS / WORKERS);
    for (let i = 0; i < WORKERS; i++) {
      parts.push(`bench_part${i + 1}`);
      await load(client, `bench_part${i + 1}`, i * per + 1, Math.min(ROWS, (i + 1) * per));
    }
    await client.end();
    console.log(
      `PostgreSQL ${version}: ` +
        (`${ROWS.toLocaleString('en-US')} rows (and the same split over ` +
          (`${WORKERS} tables) loaded in ` +
            `${seconds(performance.now() - loadStarted)}; chunks of ${CHUNK.toLocaleString('en-US')} rows`)),
    );

    // Warm the cache for everyone alike: the first read of a fresh table also sets hint bits.
    await copyReference(cluster);
    const copyMs = await copyReference(cluster);
    const copyRate = rate(ROWS, copyMs);
    console.log(`COPY bench TO STDOUT -> /dev/null: ${seconds(copyMs)}, ${show(copyRate)}`);

    const oneMs = await runPgcdc(cluster, ['bench'], 1, 'bench_one');
    const oneRate = rate(ROWS, oneMs);
    console.log(
      `pgcdc snapshot, 1 worker -> JSONL (fsynced): ` +
        `${seconds(oneMs)}, ${show(oneRate)} (${(oneRate / copyRate).toFixed(2)} x COPY)`,
    );

    const manyMs = await runPgcdc(cluster, parts, WORKERS, 'bench_many');
    const manyRate = rate(ROWS, manyMs);
    console.log(
      `pgcdc snapshot, ` +
        (`${WORKERS} workers over ` +
          (`${WORKERS} tables -> JSONL (fsynced): ` +
            `${seconds(manyMs)}, ${show(manyRate)} (${(manyRate / copyRate).toFixed(2)} x COPY)`)),
    );
    console.log(`ratio ${(oneRate / copyRate).toFixed(2)}`);
  } finally {
    await cluster.destroy();
  }
}

await main();
