/**
 * `pgcdc verify` throughput on one narrow table, against `COPY bench TO STDOUT` in the same run.
 *
 *   npm run bench:verify -- [--rows 10000000] [--chunk 50000] [--pg 18] [--keep <dir>] [--different]
 *
 * - --different: after the equal run, one byte of one row is edited in the sink file (restored
 *   afterwards) and verify is timed again: one different key, one chunk drilled into.
 * - --keep <dir>: keep the loaded cluster and the sink in <dir> (stopped at the end) and reuse them
 *   on the next run with the same --rows and --pg: iterations then skip the load and the snapshot
 *   (~200 s at 10M rows). Without it everything lives in temp directories removed at the end.
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
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { EmbeddedCluster, freePort } from '../src/embedded/cluster.ts';
import { resolveEndpoint } from '../src/postgres/connect.ts';
import { jsonlFileName } from '../src/sinks/jsonl/jsonl.ts';
import { readCheckpoint } from '../src/offsets/file.ts';
import { parseConfig } from '../src/config.ts';
import { JsonlSinkReader } from '../src/verify/jsonl-reader.ts';
import { runVerify, type VerifyReport } from '../src/verify/verify.ts';
import { wholeNumber } from './flags.ts';
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

const DATABASE = BENCH_DATABASE;
const SLOT = 'bench_capture';

const { values: flags } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    chunk: { type: 'string', default: '50000' },
    pg: { type: 'string', default: '18' },
    keep: { type: 'string' },
    different: { type: 'boolean', default: false },
  },
});

const ROWS = wholeNumber(flags.rows, '--rows');
const CHUNK = wholeNumber(flags.chunk, '--chunk');
const MAJOR = wholeNumber(flags.pg, '--pg');

/** The capture's output: the product's initial snapshot into JSONL, checkpointed as done (its slot kept). */
async function writeSink(cluster: EmbeddedCluster, dir: string): Promise<void> {
  await snapshotIntoJsonl(cluster, { tables: ['bench'], workers: 1, chunkRows: CHUNK, major: MAJOR, slot: SLOT, dir });
}

/** What a kept directory holds (--keep): the cluster's port and the shape it was prepared for. */
interface Prepared {
  readonly rows: number;
  readonly major: number;
  readonly port: number;
}

async function readPrepared(dir: string): Promise<Prepared | undefined> {
  try {
    const prepared = JSON.parse(await readFile(path.join(dir, 'prepared.json'), 'utf8')) as Prepared;
    return prepared.rows === ROWS && prepared.major === MAJOR ? prepared : undefined;
  } catch {
    return undefined;
  }
}

/** Loads the table and writes the sink (both not timed). */
async function prepare(cluster: EmbeddedCluster, dir: string): Promise<void> {
  const admin = new pg.Client({ connectionString: cluster.url('postgres') });
  await admin.connect();
  await admin.query(`create database ${DATABASE}`);
  await admin.end();
  const client = await benchConnect(cluster);
  const version =
    (await client.query<{ v: string }>("select current_setting('server_version') as v")).rows[0]?.v ?? '?';
  const loadStarted = performance.now();
  await createNarrowTable(client, 'bench', 1, ROWS);
  await client.query(`create publication bench for table bench`);
  await client.end();
  console.log(
    `PostgreSQL ${version}: ${ROWS.toLocaleString('en-US')} rows loaded in ` + seconds(performance.now() - loadStarted),
  );
  const sinkStarted = performance.now();
  await writeSink(cluster, dir);
  console.log(`sink written by pgcdc's initial snapshot into JSONL: ${seconds(performance.now() - sinkStarted)}`);
}

async function main(): Promise<void> {
  const keep = flags.keep === undefined ? undefined : path.resolve(flags.keep);
  const prepared = keep === undefined ? undefined : await readPrepared(keep);
  if (keep !== undefined && prepared === undefined) {
    await rm(keep, { recursive: true, force: true });
    await mkdir(keep, { recursive: true });
  }
  const dir = keep ?? (await mkdtemp(path.join(tmpdir(), 'pgcdc-bench-verify-')));
  const port = prepared?.port ?? (keep === undefined ? undefined : await freePort());
  const cluster = await EmbeddedCluster.start({
    major: MAJOR,
    settings: { shared_buffers: '512MB', autovacuum: 'off' },
    ...(keep === undefined ? {} : { baseDir: path.join(keep, 'pg') }),
    ...(port === undefined ? {} : { port }),
  });
  try {
    if (prepared === undefined) await prepare(cluster, dir);
    else console.log(`reusing the cluster and sink prepared in ${keep} (${ROWS.toLocaleString('en-US')} rows)`);
    if (keep !== undefined && port !== undefined && prepared === undefined)
      await writeFile(path.join(keep, 'prepared.json'), JSON.stringify({ rows: ROWS, major: MAJOR, port }));

    await copyToDevNull(cluster, 'bench');
    const copyMs = await copyToDevNull(cluster, 'bench');
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
    const verifyOnce = async (): Promise<{ report: VerifyReport; ms: number }> => {
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
      return { report, ms: performance.now() - started };
    };
    const { report, ms: verifyMs } = await verifyOnce();
    const table = report.tables[0];
    if (report.outcome !== 'equal' || table?.sourceRows !== ROWS || table.sinkRows !== ROWS)
      throw new Error(`verify did not report equal with ${ROWS} rows: ${JSON.stringify(report).slice(0, 500)}`);
    const verifyRate = rate(ROWS, verifyMs);
    const rss = Math.round(process.resourceUsage().maxRSS / 1024);
    console.log(
      `pgcdc verify (equal, ${ROWS.toLocaleString('en-US')} rows each side, ${table.chunks} chunks): ` +
        `${seconds(verifyMs)}, ${show(verifyRate)}, peak RSS ${rss} MB`,
    );
    if (flags.different === true) {
      // One byte of one row's value edited in place (same length: the durable size still holds).
      const file = path.join(dir, 'events', jsonlFileName(`${DATABASE}.public.bench`));
      const handle = await open(file, 'r+');
      try {
        const head = Buffer.alloc(4096);
        await handle.read(head, 0, head.length, 0);
        const at = head.indexOf('"t":"', head.indexOf('"after":')) + 5;
        const original = head.subarray(at, at + 1);
        await handle.write(Buffer.from(original[0] === 0x30 ? '1' : '0'), 0, 1, at);
        try {
          const edited = await verifyOnce();
          const t = edited.report.tables[0];
          if (t?.different !== 1 || t.chunksDifferent !== 1)
            throw new Error(`verify did not find the one edited row: ${JSON.stringify(edited.report).slice(0, 500)}`);
          console.log(
            `pgcdc verify (one row edited in the sink: ${t.differentKeys.join(', ')} different, ` +
              `1 of ${t.chunks} chunks drilled into): ${seconds(edited.ms)}`,
          );
        } finally {
          await handle.write(original, 0, 1, at);
        }
      } finally {
        await handle.close();
      }
    }
    console.log(`ratio ${(verifyRate / copyRate).toFixed(2)}`);
  } finally {
    if (keep !== undefined) await cluster.stop();
    else {
      await rm(dir, { recursive: true, force: true });
      await cluster.destroy();
    }
  }
}

await main();
