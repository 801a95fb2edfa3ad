/**
 * Kafka sink throughput and latency: pgcdc into a one-broker Kafka on this machine against Kafka's own
 * producer benchmark (org.apache.kafka.tools.ProducerPerformance, what kafka-producer-perf-test.sh runs),
 * in the same run.
 *
 *   npm run bench:kafka -- [--rows 1000000] [--tx-size 1000] [--pgbench-tx 5000] [--pgbench-clients 4]
 *                          [--latency-rate 10000] [--latency-seconds 20] [--latency-delays default,0]
 *                          [--only narrow,pgbench,latency]
 *                          [--cpu-prof <dir>]
 *   (PGCDC_BENCH_ROWS=100000 sets the default of --rows, for a quick run.)
 *
 * - narrow: --rows narrow inserts (bench/stream.ts's table) committed in --tx-size transactions before
 *   pgcdc starts; pgcdc streams them into Kafka, once per delivery mode (two slots at the same LSN).
 *   Timed from spawning the real CLI (bin/pgcdc.js from the dist/ the bench builds) until its offsets
 *   file holds a checkpoint past the last row: the file is written after the checkpoint is in Kafka
 *   (exactly-once: after the Kafka transaction holding the rows and the checkpoint committed). Kafka's
 *   Java consumer (bench/KafkaTally.java, read_committed) then counts the topic: it must hold --rows.
 * - pgbench: `pgbench -i` then `pgbench -n -c <clients> -t <tx>` (the tpcb mix: 3 updates and 1 insert
 *   per transaction, pgbench_history without a key), captured likewise.
 * - reference: ProducerPerformance producing the same number of records of the same average size
 *   (key + value + headers of pgcdc's records, as the consumer counted them) with acks=all and
 *   enable.idempotence=true, timed from spawn to exit (as pgcdc is); then again with transactions
 *   committed as often as pgcdc committed its own (its checkpoints counted in the offsets topic).
 * - latency: pgcdc streaming while the bench offers --latency-rate inserts/s (100 rows per transaction
 *   every 10 ms, on a fixed schedule) for --latency-seconds; per record, the broker's append time
 *   (topic created with message.timestamp.type=LogAppendTime: the broker's clock) minus the source
 *   commit time (source.ts_ms: PostgreSQL's commit timestamp, its clock, truncated to ms), and a
 *   read_committed Java consumer's receipt time (its clock) minus the same. One machine, one clock.
 *
 * The last line is `ratio <pgcdc exactly-once rows/s / ProducerPerformance (acks=all, idempotent) records/s>`
 * for the narrow inserts.
 */
import { loadavg } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { EmbeddedCluster } from '../src/embedded/cluster.ts';
import { startKafka, type KafkaCluster } from '../test/harness/kafka.ts';
import { exitAfter, withBenchCluster } from './bench-cluster.ts';
import { wholeNumber } from './flags.ts';
import { producerPerformance, tallyTopics, type Tally } from './kafka-tools.ts';
import { kafkaSinkArgs, runPgcdc, type Delivery } from './pgcdc-process.ts';
import { measureLatency } from './kafka-latency.ts';
import { loadNarrow } from './narrow.ts';
import { loadPgbench } from './kafka-pgbench.ts';

const DATABASE = 'bench';

const { values: flags } = parseArgs({
  options: {
    rows: { type: 'string', default: process.env.PGCDC_BENCH_ROWS ?? '1000000' },
    'tx-size': { type: 'string', default: '1000' },
    'pgbench-tx': { type: 'string', default: '5000' },
    'pgbench-clients': { type: 'string', default: '4' },
    'latency-rate': { type: 'string', default: '10000' },
    'latency-seconds': { type: 'string', default: '20' },
    'latency-delays': { type: 'string', default: 'default,0' },
    only: { type: 'string', default: 'narrow,pgbench,latency' },
    'cpu-prof': { type: 'string' },
  },
});

const ROWS = wholeNumber(flags.rows, '--rows');
const TX_SIZE = wholeNumber(flags['tx-size'], '--tx-size');
const PGBENCH_TX = wholeNumber(flags['pgbench-tx'], '--pgbench-tx');
const PGBENCH_CLIENTS = wholeNumber(flags['pgbench-clients'], '--pgbench-clients');
const LATENCY_RATE = wholeNumber(flags['latency-rate'], '--latency-rate');
const LATENCY_SECONDS = wholeNumber(flags['latency-seconds'], '--latency-seconds');
const LATENCY_DELAYS = flags['latency-delays']
  .split(',')
  .map((d) => (d === 'default' ? undefined : d === '0' ? 0 : wholeNumber(d, '--latency-delays')));
const ONLY = new Set(flags.only.split(','));
const PROFILE_DIR = flags['cpu-prof'] === undefined ? undefined : path.resolve(flags['cpu-prof']);
const MODES: readonly Delivery[] = ['exactly-once', 'at-least-once'];

const perSecond = (n: number, ms: number): number => (n / ms) * 1000;
const show = (rate: number): string => `${Math.round(rate).toLocaleString('en-US')}/s`;
const seconds = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const load = (): string =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

/** Average Kafka record size (key + value + header keys and values) of the records a tally counted. */
const averageSize = (t: Tally): number => Math.round((t.keyBytes + t.valueBytes + t.headerBytes) / t.records);

interface Workload {
  name: string;
  database: string;
  publication: string;
  tables: string;
  /** Slot per delivery mode, all at the same LSN before the workload ran. */
  slot: (mode: Delivery) => string;
  /** An LSN inside the last transaction: a checkpoint at or past it covers every change. */
  threshold: string;
  /** Records pgcdc must deliver (no deletes, so no tombstones). */
  expected: number;
}

/**
 * pgcdc in each mode, then ProducerPerformance with the same record count and average size.
 * Returns pgcdc exactly-once rows/s over ProducerPerformance (idempotent, no transactions) records/s.
 */
async function compare(kafka: KafkaCluster, cluster: EmbeddedCluster, work: Workload, dir: string): Promise<number> {
  const rates = new Map<Delivery, number>();
  let size = 0;
  let transactionMs = 0;
  for (const mode of MODES) {
    const prefix = `${work.name}_${mode === 'exactly-once' ? 'eo' : 'alo'}`;
    const before = load();
    const run = await runPgcdc({
      cluster,
      database: work.database,
      sink: kafkaSinkArgs(kafka.bootstrap, mode),
      slot: work.slot(mode),
      publication: work.publication,
      tables: work.tables,
      prefix,
      threshold: work.threshold,
      workDir: path.join(dir, prefix),
      profileDir: mode === 'exactly-once' && PROFILE_DIR !== undefined ? path.join(PROFILE_DIR, work.name) : undefined,
    });
    const escaped = prefix.replace(/[.]/g, '\\.');
    const tally = await tallyTopics(kafka.bootstrap, `${escaped}\\.public\\..*`);
    if (tally.records !== work.expected)
      throw new Error(`${work.name} ${mode}: Kafka holds ${tally.records} records, expected ${work.expected}`);
    const commits = await tallyTopics(kafka.bootstrap, `${escaped}\\.pgcdc-offsets`);
    size = averageSize(tally);
    if (mode === 'exactly-once') transactionMs = Math.max(1, Math.round(run.totalMs / commits.records));
    const rate = perSecond(work.expected, run.totalMs);
    rates.set(mode, rate);
    console.log(
      `pgcdc ${mode.padEnd(13)} ${seconds(run.totalMs)}, ${show(rate)} records ` +
        `(start-up ${seconds(run.startupMs)}; ` +
        `${show(perSecond(work.expected, run.totalMs - run.startupMs))} after it); ` +
        `${tally.records.toLocaleString('en-US')} records of ${size} bytes on average checked, ` +
        `${commits.records} checkpoints; load ${before} -> ${load()}`,
    );
  }
  const plain = await producerPerformance(kafka.bootstrap, `${work.name}_perf`, work.expected, size);
  const plainRate = perSecond(work.expected, plain.wallMs);
  console.log(
    `ProducerPerformance idempotent: ${seconds(plain.wallMs)} spawn to exit, ${show(plainRate)} records ` +
      `(its own figure ${show(plain.reportedRate)}): ${plain.summary}`,
  );
  const tx = await producerPerformance(kafka.bootstrap, `${work.name}_perf_tx`, work.expected, size, transactionMs);
  const txRate = perSecond(work.expected, tx.wallMs);
  console.log(
    `ProducerPerformance transactional (a commit every ${transactionMs} ms, as pgcdc): ${seconds(tx.wallMs)}, ` +
      `${show(txRate)} records (its own figure ${show(tx.reportedRate)}): ${tx.summary}`,
  );
  // Not the reference: how far the Java producer goes with batches as large as pgcdc's produce requests.
  const tuned = await producerPerformance(kafka.bootstrap, `${work.name}_perf_big`, work.expected, size, undefined, [
    'batch.size=1000000',
    'linger.ms=10',
  ]);
  console.log(
    `ProducerPerformance idempotent, batch.size=1000000 linger.ms=10 (for information): ${seconds(tuned.wallMs)}, ` +
      `${show(perSecond(work.expected, tuned.wallMs))} records (its own figure ${show(tuned.reportedRate)})`,
  );
  const eo = rates.get('exactly-once') ?? 0;
  const alo = rates.get('at-least-once') ?? 0;
  console.log(
    `${work.name}: exactly-once / transactional perf-test ${(eo / txRate).toFixed(2)}, ` +
      `at-least-once / idempotent perf-test ${(alo / plainRate).toFixed(2)}, ` +
      `exactly-once / idempotent perf-test ${(eo / plainRate).toFixed(2)}`,
  );
  return eo / plainRate;
}

async function narrowWorkload(cluster: EmbeddedCluster): Promise<Workload> {
  const narrow = await loadNarrow(cluster, DATABASE, ROWS, TX_SIZE, ['narrow_eo', 'narrow_alo']);
  return {
    name: 'narrow',
    database: DATABASE,
    publication: narrow.publication,
    tables: narrow.tables,
    slot: (mode) => (mode === 'exactly-once' ? 'narrow_eo' : 'narrow_alo'),
    threshold: narrow.threshold,
    expected: ROWS,
  };
}

async function main(): Promise<void> {
  console.log(`machine: 2 cores shared with other work; load average ${load()}`);
  await withBenchCluster({ prefix: 'pgcdc-bench-kafka-', databases: [DATABASE, 'pgb'] }, async (cluster, dir) => {
    let kafka: KafkaCluster | undefined;
    try {
      kafka = await startKafka({ heap: '1g' });
      // The first transactional producer of a fresh broker creates __transaction_state and waits for its
      // coordinator to load (pgcdc retries "The coordinator is loading"): a user's cluster is past that.
      await producerPerformance(kafka.bootstrap, 'warm_up', 10, 100, 100);
      let ratio: number | undefined;
      if (ONLY.has('pgbench')) {
        const work = await loadPgbench(cluster, 'pgb', PGBENCH_CLIENTS, PGBENCH_TX);
        await compare(kafka, cluster, work, dir);
      }
      if (ONLY.has('latency'))
        await measureLatency({
          cluster,
          kafka,
          database: DATABASE,
          rate: LATENCY_RATE,
          seconds: LATENCY_SECONDS,
          delays: LATENCY_DELAYS,
          dir,
        });
      if (ONLY.has('narrow')) ratio = await compare(kafka, cluster, await narrowWorkload(cluster), dir);
      if (ratio !== undefined) console.log(`ratio ${ratio.toFixed(2)}`);
    } finally {
      await kafka?.stopAll();
    }
  });
}

await exitAfter(main);
