/**
 * End-to-end latency at a fixed offered load: source commit to durable in the sink, per change.
 *
 *   npm run bench:latency -- [--rates 1000,10000,30000] [--seconds 60] [--tx-size 100]
 *                            [--max-delay-ms default,5] [--sink jsonl|kafka] [--kafka-delivery exactly-once]
 *                            [--pg 18] [--cpu-prof <dir>] [--strace <file>] [--stamps <file>] [--json <file>]
 *                            [--svg <file>]
 *
 * Per batch.maxDelayMs value and per rate: a new slot, the real pgcdc CLI as a child process
 * (bench/pgcdc-process.ts) streaming it, then the offered load from a separate process
 * (bench/latency-load.ts): `rate` rows/s in --tx-size row transactions on a fixed schedule for
 * --seconds. The latency of a change is measured against its own commit time (source.ts_us of its
 * event: PostgreSQL's commit timestamp; one machine, one clock):
 *
 * - jsonl: `visible` when the bench read its line in the file, `durable` when the bench read a stored
 *   checkpoint covering it (pgcdc stores it only after the sink's fdatasync): bench/latency-follow.ts.
 * - kafka: `durable` is the broker's append time (a LogAppendTime topic), `visible` the receipt by a
 *   read_committed Java consumer, as bench/kafka-latency.ts measures them (ms resolution).
 *
 * A rate is sustained when the loader achieved 95 % of it and the lag did not grow (the median latency
 * of the last tenth of the changes within 1.5 times the p95 of the middle fifth plus 50 ms). The reference
 * in the same run is the disk: the time of one small append plus fdatasync on the same file system.
 * The last line is `ratio <50 ms target / durable p99 at the rate closest to 10k/s, first delay>`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { open, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import type { EmbeddedCluster } from '../src/embedded/cluster.ts';
import type { KafkaCluster } from '../test/harness/kafka.ts';
import type { followTopics } from './kafka-tools.ts';
import { exitAfter, withBenchCluster } from './bench-cluster.ts';
import { wholeNumber } from './flags.ts';
import { JsonlFollower, type Stamps } from './latency-follow.ts';
import type { LoadReport } from './latency-load.ts';
import { lagTrend, ms, percentiles, type LagTrend, type Percentiles } from './latency-stats.ts';
import { kafkaSinkArgs, startPgcdc, type Delivery } from './pgcdc-process.ts';
import { barChartSvg } from './svg-chart.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DATABASE = 'bench';
const TARGET_P99_MS = 50;

const { values: flags } = parseArgs({
  options: {
    rates: { type: 'string', default: '1000,10000,30000' },
    seconds: { type: 'string', default: '60' },
    'tx-size': { type: 'string', default: '100' },
    'max-delay-ms': { type: 'string', default: 'default' },
    sink: { type: 'string', default: 'jsonl' },
    'kafka-delivery': { type: 'string', default: 'exactly-once' },
    pg: { type: 'string', default: '18' },
    'cpu-prof': { type: 'string' },
    strace: { type: 'string' },
    json: { type: 'string' },
    svg: { type: 'string' },
    stamps: { type: 'string' },
  },
});

const RATES = flags.rates.split(',').map((r) => wholeNumber(r, '--rates'));
const SECONDS = wholeNumber(flags.seconds, '--seconds');
const TX_SIZE = wholeNumber(flags['tx-size'], '--tx-size');
const MAJOR = wholeNumber(flags.pg, '--pg');
const DELAYS = flags['max-delay-ms']
  .split(',')
  .map((d) => (d === 'default' ? undefined : d === '0' ? 0 : wholeNumber(d, '--max-delay-ms')));
const SINK = flags.sink;
if (SINK !== 'jsonl' && SINK !== 'kafka') {
  process.stderr.write(`bench: --sink must be jsonl or kafka, not ${JSON.stringify(SINK)}\n`);
  process.exit(2);
}
const KAFKA_DELIVERY = flags['kafka-delivery'] as Delivery;
const PROFILE_DIR = flags['cpu-prof'] === undefined ? undefined : path.resolve(flags['cpu-prof']);

/** One rate at one batch.maxDelayMs. */
interface RunResult {
  maxDelayMs: number | 'default';
  offeredRate: number;
  achievedRate: number;
  loaderLateP99Ms: number;
  changes: number;
  visible: Percentiles;
  durable: Percentiles;
  lag: LagTrend;
  sustained: boolean;
  /** jsonl: how late the bench read each checkpoint after its rename (its stamps are the kernel's). */
  observerDelay?: Percentiles | undefined;
}

/** The disk's floor: one 4 KiB append and fdatasync, 200 times, on the file system of the sink. */
async function fsyncFloor(dir: string): Promise<Percentiles> {
  const file = await open(path.join(dir, 'fsync-floor'), 'w');
  const block = Buffer.alloc(4096, 0x61);
  const times: number[] = [];
  try {
    for (let i = 0; i < 200; i++) {
      const started = performance.now();
      await file.write(block, 0, block.length, i * block.length);
      await file.datasync();
      times.push(performance.now() - started);
    }
  } finally {
    await file.close();
  }
  return percentiles(times);
}

function startLoad(cluster: EmbeddedCluster, rate: number, firstId: number): Promise<LoadReport> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(HERE, 'latency-load.ts'), `${rate}`, `${SECONDS}`, `${TX_SIZE}`, `${firstId}`],
    {
      env: { ...process.env, PGCDC_BENCH_URL: cluster.url(DATABASE), PGPASSWORD: cluster.password },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) =>
      code === 0 ? resolve(JSON.parse(out) as LoadReport) : reject(new Error(`latency-load exited with ${code}`)),
    );
  });
}

/** `strace -f -T -tt` of the pgcdc process's syncs, writes and renames into `file`, for finding a stall. */
function straceOf(pid: number | undefined, file: string): ChildProcess | undefined {
  if (pid === undefined) return undefined;
  const args = ['-f', '-T', '-tt', '-e', 'trace=fdatasync,fsync,pwrite64,write,rename,openat', '-o', file];
  return spawn('strace', [...args, '-p', `${pid}`], { stdio: 'ignore' });
}

async function runOnce(
  cluster: EmbeddedCluster,
  client: pg.Client,
  kafka: KafkaCluster | undefined,
  dir: string,
  delay: number | undefined,
  rate: number,
  firstId: number,
): Promise<RunResult> {
  const prefix = `lat_${delay ?? 'default'}_${rate}`;
  await client.query(`select pg_create_logical_replication_slot('${prefix}', 'pgoutput')`);
  const workDir = path.join(dir, prefix);
  const out = path.join(workDir, 'out');
  const rows = Math.max(1, Math.round((rate * SECONDS) / TX_SIZE)) * TX_SIZE;
  let follower: JsonlFollower | undefined;
  let kafkaFollower: ReturnType<typeof followTopics> | undefined;
  if (kafka !== undefined) {
    const tools = await import('./kafka-tools.ts');
    await tools.createTopic(kafka.bootstrap, `${prefix}.public.lat`, { 'message.timestamp.type': 'LogAppendTime' });
    kafkaFollower = tools.followTopics(kafka.bootstrap, `${prefix}\\.public\\.lat`, rows);
    await kafkaFollower.ready;
  }
  const pgcdc = await startPgcdc({
    cluster,
    database: DATABASE,
    sink: kafka === undefined ? ['--out', out] : kafkaSinkArgs(kafka.bootstrap, KAFKA_DELIVERY),
    slot: prefix,
    publication: 'lat_pub',
    tables: 'public.lat',
    prefix,
    workDir,
    maxDelayMs: delay,
    profileDir: PROFILE_DIR,
  });
  let strace: ChildProcess | undefined;
  try {
    while (pgcdc.startupMs() === 0) {
      if (pgcdc.child.exitCode !== null) throw new Error(`pgcdc exited:\n${pgcdc.stderr()}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    if (flags.strace !== undefined) strace = straceOf(pgcdc.child.pid, `${flags.strace}.${prefix}`);
    if (kafka === undefined) follower = new JsonlFollower(path.join(out, `${prefix}.public.lat.jsonl`), pgcdc.offsets);
    const load = await startLoad(cluster, rate, firstId);
    let stamps: Stamps;
    if (follower !== undefined) {
      await follower.until(load.rows, 120_000);
      stamps = follower.stamps;
    } else {
      const timeout = setTimeout(() => kafkaFollower?.stop(), 120_000);
      const tally = await kafkaFollower!.done.finally(() => clearTimeout(timeout));
      stamps = { commitMs: [], visibleMs: tally.receiptMs, durableMs: tally.appendMs };
    }
    if (flags.stamps !== undefined) await writeStamps(`${flags.stamps}.${prefix}.csv`, stamps);
    const lag = lagTrend(stamps.durableMs);
    return {
      maxDelayMs: delay ?? 'default',
      offeredRate: rate,
      achievedRate: Math.round(load.achievedRate),
      loaderLateP99Ms: load.lateP99Ms,
      changes: stamps.durableMs.length,
      visible: percentiles(stamps.visibleMs),
      durable: percentiles(stamps.durableMs),
      lag,
      sustained: load.achievedRate >= rate * 0.95 && !lag.grew,
      observerDelay: follower === undefined ? undefined : percentiles(follower.observerDelayMs),
    };
  } finally {
    strace?.kill('SIGINT');
    follower?.close();
    kafkaFollower?.stop();
    if (pgcdc.child.exitCode === null) await pgcdc.stop();
    await client.query(`select pg_drop_replication_slot('${prefix}')`);
  }
}

/** --stamps: every change's commit time and latencies, as CSV (for finding when stalls happen). */
async function writeStamps(file: string, stamps: Stamps): Promise<void> {
  const lines = stamps.durableMs.map(
    (durable, i) => `${stamps.commitMs[i] ?? ''},${stamps.visibleMs[i]?.toFixed(2) ?? ''},${durable.toFixed(2)}`,
  );
  await writeFile(file, `commit_ms,visible_ms,durable_ms\n${lines.join('\n')}\n`);
}

function printTable(results: readonly RunResult[]): void {
  const visibleName = SINK === 'jsonl' ? 'line visible' : 'consumer receipt';
  const durableName = SINK === 'jsonl' ? 'durable (checkpoint)' : 'broker append';
  console.log(
    `\n| batch.maxDelayMs | offered/s | achieved/s | ${visibleName} p50 / p99 | ${durableName} p50 | p95 | p99 | max ` +
      `| lag middle -> end (p50) | sustained |`,
  );
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
  for (const r of results)
    console.log(
      `| ${r.maxDelayMs} | ${r.offeredRate.toLocaleString('en-US')} | ${r.achievedRate.toLocaleString('en-US')} ` +
        `| ${ms(r.visible.p50)} / ${ms(r.visible.p99)} ms | ${ms(r.durable.p50)} | ${ms(r.durable.p95)} ` +
        `| ${ms(r.durable.p99)} | ${ms(r.durable.max)} ms | ${ms(r.lag.middleP50)} -> ${ms(r.lag.endP50)} ms ` +
        `| ${r.sustained ? 'yes' : r.lag.grew ? 'no (lag grew)' : 'no (load not reached)'} |`,
    );
}

async function main(): Promise<void> {
  const machine: Machine = { nproc: cpus().length, cpu: cpus()[0]?.model ?? '?', loadavg: loadavg() };
  console.log(`machine: ${machine.nproc} cores (${machine.cpu}), load average ${machine.loadavg.join(' ')}`);
  const settings = { shared_buffers: '512MB', max_wal_size: '16GB', checkpoint_timeout: '1h', autovacuum: 'off' };
  await withBenchCluster(
    { prefix: 'pgcdc-bench-latency-', major: MAJOR, settings, databases: [DATABASE] },
    (cluster, dir) => measureAll(cluster, dir, machine),
  );
}

/** The machine the run was on, as the --json report gives it. */
interface Machine {
  readonly nproc: number;
  readonly cpu: string;
  readonly loadavg: readonly number[];
}

/** Measures every batch delay at every rate; prints the table, the --json and --svg reports and the ratio. */
async function measureAll(cluster: EmbeddedCluster, dir: string, machine: Machine): Promise<void> {
  let kafka: KafkaCluster | undefined;
  try {
    const floor = await fsyncFloor(dir);
    console.log(
      `reference: 4 KiB append + fdatasync in ${dir}: p50 ${ms(floor.p50)} ms, p99 ${ms(floor.p99)} ms, ` +
        `max ${ms(floor.max)} ms`,
    );
    if (SINK === 'kafka') {
      const { startKafka } = await import('../test/harness/kafka.ts');
      const { producerPerformance } = await import('./kafka-tools.ts');
      kafka = await startKafka({ heap: '1g' });
      // The first transactional producer of a fresh broker waits for its coordinator to load.
      await producerPerformance(kafka.bootstrap, 'warm_up', 10, 100, 100);
    }
    const client = new pg.Client({ connectionString: cluster.url(DATABASE) });
    await client.connect();
    await client.query('create table lat (id bigint primary key, v integer not null, t text not null)');
    await client.query('create publication lat_pub for table lat');
    const results: RunResult[] = [];
    let next = 1;
    try {
      for (const delay of DELAYS)
        for (const rate of RATES) {
          const result = await runOnce(cluster, client, kafka, dir, delay, rate, next);
          next += result.changes + TX_SIZE;
          results.push(result);
          console.log(
            `batch.maxDelayMs ${result.maxDelayMs}, ${rate.toLocaleString('en-US')}/s offered ` +
              `(${result.achievedRate.toLocaleString('en-US')}/s achieved, ${result.changes.toLocaleString('en-US')} ` +
              `changes): durable p50 ${ms(result.durable.p50)} ms, p99 ${ms(result.durable.p99)} ms, max ` +
              `${ms(result.durable.max)} ms` +
              (result.observerDelay === undefined
                ? ''
                : ` (the bench read checkpoints late by p99 ${ms(result.observerDelay.p99)} ms, max ` +
                  `${ms(result.observerDelay.max)} ms)`),
          );
        }
    } finally {
      await client.end();
    }
    printTable(results);
    const sustained = DELAYS.map((d) => {
      const ok = results.filter((r) => r.maxDelayMs === (d ?? 'default') && r.sustained);
      return { maxDelayMs: d ?? 'default', rate: Math.max(0, ...ok.map((r) => r.offeredRate)) };
    });
    for (const s of sustained)
      console.log(`highest rate sustained with batch.maxDelayMs ${s.maxDelayMs}: ${s.rate.toLocaleString('en-US')}/s`);
    if (flags.json !== undefined) {
      const report = { sink: SINK, txSize: TX_SIZE, seconds: SECONDS, pg: MAJOR, machine, floor, results, sustained };
      await writeFile(flags.json, `${JSON.stringify(report, null, 2)}\n`);
    }
    if (flags.svg !== undefined)
      await writeFile(
        flags.svg,
        barChartSvg({
          title: `pgcdc ${SINK}: source commit to durable, per change`,
          unit: 'ms',
          groups: results.map((r) => ({
            label: `${r.offeredRate.toLocaleString('en-US')}/s, delay ${r.maxDelayMs}`,
            bars: (['p50', 'p95', 'p99'] as const).map((p) => ({ series: p, value: r.durable[p] })),
          })),
        }),
      );
    const first = results.filter((r) => r.maxDelayMs === (DELAYS[0] ?? 'default'));
    const near = first.sort((a, b) => Math.abs(a.offeredRate - 10_000) - Math.abs(b.offeredRate - 10_000))[0];
    if (near !== undefined) console.log(`ratio ${(TARGET_P99_MS / near.durable.p99).toFixed(2)}`);
  } finally {
    await kafka?.stopAll();
  }
}

await exitAfter(main);
