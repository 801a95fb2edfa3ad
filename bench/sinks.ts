/**
 * Sink throughput: 1,000,000 narrow inserts captured by pgcdc into each destination on this machine,
 * against the same server driven by its own tool (or a minimal client) in the same run.
 *
 *   npm run bench:sinks -- [--rows 1000000] [--tx-size 1000] [--only nats,redis,http]
 *   (PGCDC_BENCH_ROWS=100000 sets the default of --rows, for a quick run.)
 *
 * Per sink: the backlog is committed before pgcdc starts (one slot per sink, all created at the same
 * LSN); pgcdc (bin/pgcdc.js from the dist/ the bench builds) is timed from spawn until its offsets file
 * holds a checkpoint past the last row (written after the sink acknowledged every event up to it),
 * then the destination is counted: it must hold --rows events. The reference then sends as many
 * events of the same average size to the same server:
 * - nats: a minimal publisher with the official client (no `nats bench` in Debian), Nats-Msg-Id on
 *   each message, 1024 awaiting their PubAck (bench/sinks/nats.ts);
 * - redis: redis-benchmark XADD with the same fields, pipelined (bench/sinks/redis.ts);
 * - http: a node:http client POSTing bodies of pgcdc's size to the same counting endpoint, one
 *   request in flight like pgcdc's default (bench/sinks/http.ts).
 *
 * The last line is `ratio <sink> <pgcdc events/s / reference events/s> ...` per sink.
 */
import { loadavg } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { EmbeddedCluster } from '../src/embedded/cluster.ts';
import { exitAfter, withBenchCluster } from './bench-cluster.ts';
import { wholeNumber } from './flags.ts';
import { loadNarrow } from './narrow.ts';
import { runPgcdc } from './pgcdc-process.ts';
import { httpTarget } from './sinks/http.ts';
import { natsTarget } from './sinks/nats.ts';
import { redisTarget } from './sinks/redis.ts';
import type { SinkTarget, TargetServer } from './sinks/target.ts';

const DATABASE = 'bench';

const { values: flags } = parseArgs({
  options: {
    rows: { type: 'string', default: process.env.PGCDC_BENCH_ROWS ?? '1000000' },
    'tx-size': { type: 'string', default: '1000' },
    only: { type: 'string', default: 'nats,redis,http' },
  },
});
const ROWS = wholeNumber(flags.rows, '--rows');
const TX_SIZE = wholeNumber(flags['tx-size'], '--tx-size');
const TARGETS: readonly SinkTarget[] = [natsTarget, redisTarget, httpTarget].filter((t) =>
  flags.only.split(',').includes(t.name),
);

const show = (rate: number): string => `${Math.round(rate).toLocaleString('en-US')}/s`;
const seconds = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const load = (): string =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

async function measure(target: SinkTarget, cluster: EmbeddedCluster, dir: string, threshold: string): Promise<number> {
  const server: TargetServer = await target.start(dir);
  try {
    const prefix = `bench_${target.name}`;
    const before = load();
    const run = await runPgcdc({
      cluster,
      database: DATABASE,
      sink: target.sinkArgs(server, prefix),
      slot: prefix,
      publication: 'bench_pub',
      tables: 'public.bench',
      prefix,
      threshold,
      workDir: path.join(dir, prefix),
    });
    const held = await target.delivered(server, prefix);
    if (held.events !== ROWS)
      throw new Error(`${target.name}: the destination holds ${held.events} events, expected ${ROWS}`);
    const size = Math.max(1, Math.round(held.bytes / held.events));
    const rate = (ROWS / run.totalMs) * 1000;
    console.log(
      `pgcdc -> ${target.name}: ${seconds(run.totalMs)}, ${show(rate)} events (start-up ${seconds(run.startupMs)}); ` +
        `${held.events.toLocaleString('en-US')} events of ${size} bytes on average checked (${held.note}); ` +
        `load ${before} -> ${load()}`,
    );
    const reference = await target.reference(server, ROWS, size);
    const referenceRate = (ROWS / reference.ms) * 1000;
    console.log(
      `reference ${target.name}: ${seconds(reference.ms)}, ${show(referenceRate)} events (${reference.what})`,
    );
    return rate / referenceRate;
  } finally {
    await target.stop(server);
  }
}

async function main(): Promise<void> {
  console.log(`machine: 2 cores shared with other work; load average ${load()}`);
  const missing = TARGETS.filter((t) => !t.available());
  for (const target of missing) console.log(`${target.name}: skipped, its server program is not installed here`);
  const targets = TARGETS.filter((t) => t.available());
  await withBenchCluster({ prefix: 'pgcdc-bench-sinks-', databases: [DATABASE] }, async (cluster, dir) => {
    const slots = targets.map((t) => `bench_${t.name}`);
    const backlog = await loadNarrow(cluster, DATABASE, ROWS, TX_SIZE, slots);
    const ratios: string[] = [];
    for (const target of targets)
      ratios.push(`${target.name} ${(await measure(target, cluster, dir, backlog.threshold)).toFixed(2)}`);
    console.log(`ratio ${ratios.join(' ')}`);
  });
}

await exitAfter(main);
