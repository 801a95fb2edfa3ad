/**
 * Snapshot throughput: pgcdc's initial snapshot against `COPY ... TO STDOUT` and against the disk,
 * on the same machine in the same run (docs/benchmarks.md).
 *
 *   npm run bench:snapshot -- [--rows 1000000] [--chunk 20000] [--readers 2] [--pg 18] [--json <file>]
 *     [--svg <file>]
 *
 * One narrow table (id bigint primary key, v integer, t text) of --rows rows, read whole each time
 * (the cache warmed first by two COPYs). pgcdc runs its product path in process: a slot created with
 * EXPORT_SNAPSHOT, then snapshot/initial.ts (readers, serializer, sink, a checkpoint per batch in a
 * real offsets file), timed from the start of the read to the last durable write. Three figures:
 *
 * - (a) CPU path: the stdout sink writing into /dev/null, with 1 and --readers readers, without and
 *   with serializer threads (snapshot.threads), against `COPY bench TO STDOUT` through
 *   pg-copy-streams into /dev/null. Also printed: the readers' own queries (keyed chunks) with the
 *   bytes dropped, PostgreSQL's ceiling for one reader, and how busy the machine's CPUs were per run.
 * - (b) fsynced JSONL (fdatasync per write) against the disk's own bandwidth for the same bytes:
 *   `dd if=/dev/zero bs=1M count=<MiB written> conv=fdatasync`.
 * - (c) fsynced JSONL against `psql -c 'COPY bench TO STDOUT'` into a file (as earlier runs printed).
 *
 * The flat envelope (envelope.type flat) is measured for (a) and (b) too. Every JSONL run's line
 * count must equal --rows. The last line is `ratio <(a) with one reader>`.
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { EmbeddedCluster } from '../src/embedded/cluster.ts';
import { wholeNumber } from './flags.ts';
import { barChartSvg, type BarGroup } from './svg-chart.ts';
import { availableParallelism } from 'node:os';
import { countLines } from './output.ts';
import {
  BENCH_DATABASE,
  benchConnect,
  busySince,
  keyedChunksMs,
  machineCpu,
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
    readers: { type: 'string', default: '2' },
    pg: { type: 'string', default: '18' },
    json: { type: 'string' },
    svg: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (flags.help === true) {
  console.log(
    'npm run bench:snapshot -- [--rows 1000000] [--chunk 20000] [--readers 2] [--pg 18] [--json <file>] ' +
      '[--svg <file>]\n' +
      'The initial snapshot against COPY TO STDOUT, the disk and psql COPY, in one run (docs/benchmarks.md).',
  );
  process.exit(0);
}

const ROWS = wholeNumber(flags.rows, '--rows');
const CHUNK = wholeNumber(flags.chunk, '--chunk');
const READERS = wholeNumber(flags.readers, '--readers');
const MAJOR = wholeNumber(flags.pg, '--pg');
const cpus = availableParallelism();

interface Run {
  readonly ms: number;
  /** Bytes written (JSONL runs). */
  readonly bytes: number;
}

let slots = 0;
/** pgcdc's initial snapshot of `bench`; JSONL runs are checked for all ROWS lines. */
async function runPgcdc(
  cluster: EmbeddedCluster,
  sink: 'jsonl' | 'stdout',
  readers: number,
  envelope: 'debezium' | 'flat',
  threads = 0,
): Promise<Run> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-bench-snapshot-'));
  const slot = `bench_snapshot_${++slots}`;
  try {
    const ms = await snapshotIntoJsonl(cluster, {
      tables: ['bench'],
      workers: readers,
      chunkRows: CHUNK,
      major: MAJOR,
      slot,
      dir,
      sink,
      envelope,
      threads,
    });
    let bytes = 0;
    if (sink === 'jsonl') {
      const events = path.join(dir, 'events');
      const lines = await countLines(events);
      if (lines !== ROWS) throw new Error(`pgcdc wrote ${lines} lines, expected ${ROWS}`);
      for (const name of await readdir(events)) bytes += (await stat(path.join(events, name))).size;
    }
    const client = await benchConnect(cluster);
    await client.query('select pg_drop_replication_slot($1)', [slot]).catch(() => undefined);
    await client.end();
    return { ms, bytes };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs a command to completion; returns elapsed ms. Its stdout goes to `stdoutFile` when given. */
function timed(command: string, args: readonly string[], stdoutFile?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const out = stdoutFile === undefined ? 'ignore' : createWriteStream(stdoutFile);
    const open = out === 'ignore' ? Promise.resolve() : new Promise<void>((r) => out.on('open', () => r()));
    void open.then(() => {
      const started = performance.now();
      const child = spawn(command, args, { stdio: ['ignore', out, command === 'dd' ? 'ignore' : 'inherit'] });
      child.on('error', reject);
      child.on('exit', (code) => {
        if (code === 0) resolve(performance.now() - started);
        else reject(new Error(`${command} exited with ${code}`));
      });
    });
  });
}

/** The disk's fdatasync bandwidth for `bytes`: dd of zeros with conv=fdatasync, in the temp dir. */
async function ddMs(bytes: number): Promise<number> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-bench-dd-'));
  try {
    const mib = Math.max(1, Math.round(bytes / (1 << 20)));
    const ms = await timed('dd', [
      'if=/dev/zero',
      `of=${path.join(dir, 'dd')}`,
      'bs=1M',
      `count=${mib}`,
      'conv=fdatasync',
    ]);
    return (ms * bytes) / (mib * (1 << 20));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** `psql -c 'COPY bench TO STDOUT'` into a file: the server's text through its own client. */
async function psqlCopyMs(cluster: EmbeddedCluster): Promise<number> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-bench-psql-'));
  try {
    const url = new URL(cluster.url(BENCH_DATABASE));
    const pass = path.join(dir, 'pgpass');
    await writeFile(pass, `${url.hostname}:${url.port}:*:${url.username}:${decodeURIComponent(url.password)}\n`, {
      mode: 0o600,
    });
    process.env.PGPASSFILE = pass;
    url.password = '';
    return await timed('psql', ['-X', '-q', url.toString(), '-c', 'COPY bench TO STDOUT'], path.join(dir, 'out'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The rows/s of every run as a bar chart, grouped by where the rows went. */
function snapshotChart(bars: readonly { group: string; series: string; value: number }[], version: string): string {
  const groups: BarGroup[] = [];
  for (const bar of bars) {
    let group = groups.find((g) => g.label === bar.group);
    if (group === undefined) {
      group = { label: bar.group, bars: [] };
      groups.push(group);
    }
    (group.bars as { series: string; value: number }[]).push({ series: bar.series, value: bar.value });
  }
  return barChartSvg({
    title: `Initial snapshot of ${ROWS.toLocaleString('en-US')} narrow rows, PostgreSQL ${version}`,
    unit: 'rows/s',
    groups,
  });
}

async function main(): Promise<void> {
  const cluster = await EmbeddedCluster.start({
    major: MAJOR,
    settings: { shared_buffers: '512MB', autovacuum: 'off', max_wal_senders: '20', max_replication_slots: '20' },
  });
  const results: Record<string, number> = {};
  const bars: { group: string; series: string; value: number }[] = [];
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
    await client.end();
    console.log(
      `PostgreSQL ${version}: ${ROWS.toLocaleString('en-US')} rows loaded in ` +
        `${seconds(performance.now() - loadStarted)}; chunks of ${CHUNK.toLocaleString('en-US')} rows`,
    );

    // Warm the cache for everyone alike: the first read of a fresh table also sets hint bits.
    await copyToDevNull(cluster, 'bench');
    const copyMs = await copyToDevNull(cluster, 'bench');
    const copyRate = rate(ROWS, copyMs);
    results.copyRowsPerSecond = copyRate;
    bars.push({ group: 'into /dev/null', series: 'COPY (pg-copy-streams)', value: copyRate });
    console.log(`COPY bench TO STDOUT -> /dev/null: ${seconds(copyMs)}, ${show(copyRate)}`);
    const keyedMs = await keyedChunksMs(cluster, 'bench', CHUNK);
    const keyedRate = rate(ROWS, keyedMs);
    results.keyedChunksRowsPerSecond = keyedRate;
    bars.push({ group: 'into /dev/null', series: 'keyed chunks, 1 connection', value: keyedRate });
    console.log(
      `keyed chunks of ${CHUNK.toLocaleString('en-US')} (the readers' queries), one connection, bytes dropped: ` +
        `${seconds(keyedMs)}, ${show(keyedRate)}, ${(keyedRate / copyRate).toFixed(2)} x COPY`,
    );

    console.log(
      `(a) CPU path: --sink stdout into /dev/null, against COPY into /dev/null (busy: the machine's ${cpus} cores)`,
    );
    let ratioOne = 0;
    for (const [readers, envelope, threads] of [
      [1, 'debezium', 0],
      [READERS, 'debezium', 0],
      [1, 'debezium', 1],
      [READERS, 'debezium', READERS],
      [1, 'flat', 0],
      [READERS, 'flat', 0],
    ] as const) {
      const cpu = machineCpu();
      const run = await runPgcdc(cluster, 'stdout', readers, envelope, threads);
      const busy = busySince(cpu);
      const r = rate(ROWS, run.ms);
      if (readers === 1 && envelope === 'debezium' && threads === 0) ratioOne = r / copyRate;
      const threadsLabel = threads > 0 ? `, ${threads} thread${threads > 1 ? 's' : ''}` : '';
      const label = `${envelope}, ${readers} reader${readers > 1 ? 's' : ''}${threadsLabel}`;
      results[`a_${envelope}_${readers}${threads > 0 ? `_threads${threads}` : ''}`] = r / copyRate;
      bars.push({ group: 'into /dev/null', series: `pgcdc ${label}`, value: r });
      console.log(
        `  pgcdc ${label}: ${seconds(run.ms)}, ${show(r)}, ${(r / copyRate).toFixed(2)} x COPY; ` +
          `machine CPU ${(busy * 100).toFixed(0)}% busy`,
      );
    }

    // On a VM, the kernel's first use of guest memory it never touched costs far more than reuse (here
    // the first 560 MB of JSONL took 3 s of system time, the same run again 0.3 s): give every writer
    // below page cache that was used once, by writing (and removing) 2 GiB first.
    await ddMs(2 * (1 << 30));
    console.log('(b) fsynced JSONL against dd conv=fdatasync of the same bytes; (c) against psql COPY into a file');
    const psqlMs = await psqlCopyMs(cluster);
    const psqlRate = rate(ROWS, psqlMs);
    bars.push({ group: 'into a file', series: 'psql COPY', value: psqlRate });
    console.log(`  psql -c 'COPY bench TO STDOUT' > file: ${seconds(psqlMs)}, ${show(psqlRate)}`);
    for (const [readers, envelope] of [
      [1, 'debezium'],
      [READERS, 'debezium'],
      [1, 'flat'],
    ] as const) {
      const run = await runPgcdc(cluster, 'jsonl', readers, envelope);
      const dd = await ddMs(run.bytes);
      const r = rate(ROWS, run.ms);
      const mbps = (run.bytes / run.ms) * 1000;
      results[`b_${envelope}_${readers}`] = dd / run.ms;
      results[`c_${envelope}_${readers}`] = r / psqlRate;
      bars.push({ group: 'into a file', series: `pgcdc ${envelope}, ${readers} reader(s), fsynced JSONL`, value: r });
      console.log(
        `  pgcdc ${envelope}, ${readers} reader${readers > 1 ? 's' : ''}: ${seconds(run.ms)}, ${show(r)}, ` +
          `${(run.bytes / ROWS).toFixed(0)} B/row, ${(mbps / 1e6).toFixed(0)} MB/s; dd: ` +
          `${(((run.bytes / dd) * 1000) / 1e6).toFixed(0)} MB/s; (b) ${(dd / run.ms).toFixed(2)} x dd, ` +
          `(c) ${(r / psqlRate).toFixed(2)} x psql COPY`,
      );
    }
    if (flags.json !== undefined)
      await writeFile(flags.json, `${JSON.stringify({ rows: ROWS, ...results }, null, 2)}\n`);
    if (flags.svg !== undefined) await writeFile(flags.svg, snapshotChart(bars, version));
    console.log(`ratio ${ratioOne.toFixed(2)}`);
  } finally {
    await cluster.destroy();
  }
}

await main();
