/**
 * `pgcdc verify` throughput on one narrow table, against `COPY bench TO STDOUT` in the same run.
 *
 *   npm run bench:verify -- [--rows 10000000] [--chunk 50000] [--pg 18]
 *
 * - The sink side is written by pgcdc itself: a slot created with EXPORT_SNAPSHOT (kept, as a
 *   capture's is), then the product's initial snapshot (snapshot/initial.ts) into the real JsonlSink
 *   with its checkpoint in a real offsets file, as `pgcdc run` writes it (state done, the slot's
 *   consistent point as LSN). Not timed.
 * - verify: runVerify (src/verify/verify.ts) as `pgcdc verify` runs it: a temporary slot at L, the
 *   capture's slot peeked from its checkpoint to L (no changes), the JSONL file replayed into the
 *   hash state, the table streamed by COPY and compared. Timed end to end; must report equal with
 *   --rows rows on both sides. The process's peak RSS is printed.
 * - Reference: `COPY bench TO STDOUT` drained into /dev/null (warm cache).
 *
 * The last line is `ratio <verify rows/s / COPY rows/s>`.
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
import { JsonlSink, jsonlFileName } from '../src/sinks/jsonl/jsonl.ts';
import { createSlotWithSnapshot } from '../src/postgres/exported-snapshot.ts';
import { takeInitialSnapshot } from '../src/snapshot/initial.ts';
import { FileOffsetStore, readCheckpoint } from '../src/offsets/file.ts';
import { parseConfig } from '../src/config.ts';
import { createLogger } from '../src/core/log.ts';
import { JsonlSinkReader } from '../src/verify/jsonl-reader.ts';
import { runVerify } from '../src/verify/verify.ts';
import { wholeNumber } from './flags.ts';

const DATABASE = 'bench';
const SLOT = 'bench_capture';

const { values: flags } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    chunk: { type: 'string', default: '50000' },
    pg: { type: 'string', default: '18' },
  },
});

const ROWS = wholeNumber(flags.rows, '--rows');
const CHUNK = wholeNumber(flags.chunk, '--chunk');
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

/** The capture's output: the product's initial snapshot into JSONL, checkpointed as done. */
async function writeSink(cluster: EmbeddedCluster, dir: string): Promise<void> {
  const replication = await connect(cluster, true);
  const catalog = await connect(cluster);
  const offsets = await FileOffsetStore.open(path.join(dir, 'offsets.json'));
  try {
    const config = parseConfig({
      source: { url: cluster.url(DATABASE) },
      snapshot: { chunkSize: CHUNK, parallelism: 1, progress: 'off' },
      log: { level: 'warn' },
    });
    const types = await loadPgTypes(catalog);
    const refs = await resolveTables(catalog, [{ schema: 'public', table: 'bench' }]);
    const exported = await createSlotWithSnapshot(replication, SLOT);
    const sink = new JsonlSink({ dir: path.join(dir, 'events') });
    await sink.open(undefined);
    const identity = { version: 2 as const, systemId: '1', timeline: 1, database: DATABASE, slot: SLOT };
    const lsn = formatLsn(exported.consistentPoint);
    const result = await takeInitialSnapshot({
      exported,
      tables: refs,
      config,
      endpoint: resolveEndpoint(config.source),
      major: MAJOR,
      types,
      naming: { prefix: DATABASE, database: DATABASE, naming: 'prefix' },
      sink,
      log: createLogger({ level: 'warn', format: 'json' }),
      checkpoint: (position, list) =>
        offsets.commit({
          ...identity,
          publication: 'bench',
          lsn,
          sink: position,
          updatedAt: new Date().toISOString(),
          snapshot: { state: 'running', tables: list },
        }),
    });
    if (result.position === undefined) throw new Error('the snapshot wrote nothing');
    await offsets.commit({
      ...identity,
      publication: 'bench',
      lsn,
      sink: result.position,
      updatedAt: new Date().toISOString(),
      snapshot: { state: 'done' },
    });
    await sink.close();
  } finally {
    await offsets.close();
    await replication.end().catch(() => undefined);
    await catalog.end().catch(() => undefined);
  }
}

async function main(): Promise<void> {
  const cluster = await EmbeddedCluster.start({
    major: MAJOR,
    settings: { shared_buffers: '512MB', autovacuum: 'off' },
  });
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-bench-verify-'));
  try {
    const admin = new pg.Client({ connectionString: cluster.url('postgres') });
    await admin.connect();
    await admin.query(`create database ${DATABASE}`);
    await admin.end();
    const client = await connect(cluster);
    const version =
      (await client.query<{ v: string }>("select current_setting('server_version') as v")).rows[0]?.v ?? '?';
    const loadStarted = performance.now();
    // The same narrow shape as bench/snapshot.ts and bench/stream.ts.
    await client.query(`create table bench (id bigint primary key, v integer not null, t text not null)`);
    await client.query(
      `insert into bench select g, (g * 7919) % 1000003, substr(md5(g::text), 1, 8) from ` +
        `generate_series(1, $1::bigint) g`,
      [ROWS],
    );
    await client.query(`vacuum analyze bench`);
    await client.query(`create publication bench for table bench`);
    await client.end();
    console.log(
      `PostgreSQL ${version}: ${ROWS.toLocaleString('en-US')} rows loaded in ` +
        seconds(performance.now() - loadStarted),
    );

    const sinkStarted = performance.now();
    await writeSink(cluster, dir);
    console.log(`sink written by pgcdc's initial snapshot into JSONL: ${seconds(performance.now() - sinkStarted)}`);

    await copyReference(cluster);
    const copyMs = await copyReference(cluster);
    const copyRate = rate(ROWS, copyMs);
    console.log(`COPY bench TO STDOUT -> /dev/null: ${seconds(copyMs)}, ${show(copyRate)}`);

    const config = parseConfig({
      source: { url: cluster.url(DATABASE) },
      tables: ['public.bench'],
      publication: 'bench',
      sink: { kind: 'jsonl', out: path.join(dir, 'events') },
      offsets: path.join(dir, 'offsets.json'),
      topic: { prefix: DATABASE },
    });
    const offsetsFile = path.join(dir, 'offsets.json');
    const started = performance.now();
    const report = await runVerify({
      config,
      endpoint: resolveEndpoint(config.source),
      readCheckpoint: () => readCheckpoint(offsetsFile),
      captureRunning: () => Promise.resolve(undefined),
      sinkReader: (checkpoint) =>
        new JsonlSinkReader({
          dir: path.join(dir, 'events'),
          durable: new Map(Object.entries((checkpoint.sink as { files: Record<string, number> }).files)),
          fileName: jsonlFileName,
        }),
      waitMs: 0,
      limit: 10,
      showValues: false,
    });
    const verifyMs = performance.now() - started;
    const table = report.tables[0];
    if (report.outcome !== 'equal' || table?.sourceRows !== ROWS || table.sinkRows !== ROWS)
      throw new Error(`verify did not report equal with ${ROWS} rows: ${JSON.stringify(report).slice(0, 500)}`);
    const verifyRate = rate(ROWS, verifyMs);
    const rss = Math.round(process.resourceUsage().maxRSS / 1024);
    console.log(
      `pgcdc verify (equal, ${ROWS.toLocaleString('en-US')} rows each side): ${seconds(verifyMs)}, ` +
        `${show(verifyRate)}, peak RSS ${rss} MB`,
    );
    console.log(`ratio ${(verifyRate / copyRate).toFixed(2)}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
    await cluster.destroy();
  }
}

await main();
