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
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { EmbeddedCluster } from '../src/embedded/cluster.ts';
import { wholeNumber } from './flags.ts';
import { countLines } from './output.ts';
import {
  BENCH_DATABASE,
  benchConnect,
  copyToDevNull,
  createNarrowTable,
  rowsPerSecond as rate,
  seconds,
  showRate as show,
  snapshotIntoJsonl,
} from './initial-snapshot.ts';

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

/** pgcdc's initial snapshot of `tables` into a fresh directory, checked for all ROWS lines; returns elapsed ms. */
async function runPgcdc(
  cluster: EmbeddedCluster,
  tables: readonly string[],
  workers: number,
  slot: string,
): Promise<number> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-bench-snapshot-'));
  try {
    const elapsed = await snapshotIntoJsonl(cluster, { tables, workers, chunkRows: CHUNK, major: MAJOR, slot, dir });
    const lines = await countLines(path.join(dir, 'events'));
    if (lines !== ROWS) throw new Error(`pgcdc wrote ${lines} lines, expected ${ROWS}`);
    const client = await benchConnect(cluster);
    await client.query('select pg_drop_replication_slot($1)', [slot]).catch(() => undefined);
    await client.end();
    return elapsed;
  } finally {
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
    await admin.query(`create database ${BENCH_DATABASE}`);
    await admin.end();
    const client = await benchConnect(cluster);
    const version =
      (await client.query<{ v: string }>("select current_setting('server_version') as v")).rows[0]?.v ?? '?';
    const loadStarted = performance.now();
    await createNarrowTable(client, 'bench', 1, ROWS);
    const parts: string[] = [];
    const per = Math.ceil(ROWS / WORKERS);
    for (let i = 0; i < WORKERS; i++) {
      parts.push(`bench_part${i + 1}`);
      await createNarrowTable(client, `bench_part${i + 1}`, i * per + 1, Math.min(ROWS, (i + 1) * per));
    }
    await client.end();
    console.log(
      `PostgreSQL ${version}: ` +
        (`${ROWS.toLocaleString('en-US')} rows (and the same split over ` +
          (`${WORKERS} tables) loaded in ` +
            `${seconds(performance.now() - loadStarted)}; chunks of ${CHUNK.toLocaleString('en-US')} rows`)),
    );

    // Warm the cache for everyone alike: the first read of a fresh table also sets hint bits.
    await copyToDevNull(cluster, 'bench');
    const copyMs = await copyToDevNull(cluster, 'bench');
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
