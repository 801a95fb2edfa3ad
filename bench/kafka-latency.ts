/**
 * For bench/kafka.ts: commit-to-Kafka latency at a fixed offered load. pgcdc streams (caught up) while
 * the bench inserts `rate` rows/s for `seconds` s: rate/100 rows in one autocommit statement every
 * 10 ms on a fixed schedule (a late tick runs at once; the achieved rate is printed). A read_committed
 * Java consumer follows the topic, which the bench creates with message.timestamp.type=LogAppendTime.
 */
import path from 'node:path';
import pg from 'pg';
import type { EmbeddedCluster } from '../src/embedded/cluster.ts';
import type { KafkaCluster } from '../test/harness/kafka.ts';
import { createTopic, followTopics, percentile, producerPerformance } from './kafka-tools.ts';
import { kafkaSinkArgs, startPgcdc, type Delivery } from './pgcdc-process.ts';

export interface LatencyOptions {
  cluster: EmbeddedCluster;
  kafka: KafkaCluster;
  database: string;
  rate: number;
  seconds: number;
  /** batch.maxDelayMs values to run with (undefined: pgcdc's default). */
  delays: readonly (number | undefined)[];
  dir: string;
}

const TICK_MS = 10;

export async function measureLatency(o: LatencyOptions): Promise<void> {
  const client = new pg.Client({ connectionString: o.cluster.url(o.database) });
  await client.connect();
  await client.query('create table lat (id bigint primary key, v integer not null, t text not null)');
  await client.query('create publication lat_pub for table lat');
  let next = 1;
  let size = 0;
  try {
    for (const mode of ['exactly-once', 'at-least-once'] as const)
      for (const delay of o.delays) {
        const prefix = `lat_${mode === 'exactly-once' ? 'eo' : 'alo'}_${delay ?? 'default'}`;
        ({ next, size } = await measureOnce(o, client, mode, delay, prefix, next));
      }
    await reference(o, size);
  } finally {
    await client.end();
  }
}

/**
 * The same broker's floor in the same run: Kafka's own Java producer at the same rate, acks=all and
 * idempotent, its records as large as pgcdc's on average (key, envelope, headers), timing each
 * record from send to acknowledgement. Whatever tail it shows is the broker's and the machine's, which
 * pgcdc's figures include as well (plus PostgreSQL's commit and walsender).
 */
async function reference(o: LatencyOptions, size: number): Promise<void> {
  const total = o.rate * o.seconds;
  const perf = await producerPerformance(o.kafka.bootstrap, 'lat_perf', total, size, undefined, [], o.rate);
  console.log(
    `latency reference ProducerPerformance (acks=all, idempotent) ${total.toLocaleString('en-US')} ` +
      `records of ${size} bytes at ${o.rate.toLocaleString('en-US')}/s: send -> acknowledgement ` +
      `p50 ${perf.p50Ms} ms, p99 ${perf.p99Ms} ms, max ${perf.maxMs} ms`,
  );
}

async function measureOnce(
  o: LatencyOptions,
  client: pg.Client,
  mode: Delivery,
  delay: number | undefined,
  prefix: string,
  first: number,
): Promise<{ next: number; size: number }> {
  const slot = prefix;
  await client.query(`select pg_create_logical_replication_slot('${slot}', 'pgoutput')`);
  await createTopic(o.kafka.bootstrap, `${prefix}.public.lat`, { 'message.timestamp.type': 'LogAppendTime' });
  const perTick = Math.max(1, Math.round((o.rate * TICK_MS) / 1000));
  const ticks = Math.round((o.seconds * 1000) / TICK_MS);
  const total = perTick * ticks;
  const follower = followTopics(o.kafka.bootstrap, `${prefix}\\.public\\.lat`, total);
  await follower.ready;
  const pgcdc = await startPgcdc({
    cluster: o.cluster,
    database: o.database,
    sink: kafkaSinkArgs(o.kafka.bootstrap, mode),
    slot,
    publication: 'lat_pub',
    tables: 'public.lat',
    prefix,
    workDir: path.join(o.dir, prefix),
    maxDelayMs: delay,
  });
  try {
    while (pgcdc.startupMs() === 0) {
      if (pgcdc.child.exitCode !== null) throw new Error(`pgcdc exited:\n${pgcdc.stderr()}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const started = performance.now();
    let id = first;
    for (let tick = 0; tick < ticks; tick++) {
      const due = started + tick * TICK_MS;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      await client.query(
        `insert into lat select g, (g * 7919) % 1000003, substr(md5(g::text), 1, 8) from ` +
          `generate_series($1::bigint, $2::bigint) g`,
        [id, id + perTick - 1],
      );
      id += perTick;
    }
    const offeredMs = performance.now() - started;
    const timeout = setTimeout(() => follower.stop(), 120_000);
    const seen = await follower.done.finally(() => clearTimeout(timeout));
    const append = seen.appendMs;
    const receipt = seen.receiptMs;
    const ms = (values: number[], p: number): string => `${percentile(values, p)}`;
    console.log(
      `latency ${mode} batch.maxDelayMs=${delay ?? 'default'}: ${total.toLocaleString('en-US')} inserts at ` +
        `${Math.round((total / offeredMs) * 1000).toLocaleString('en-US')}/s offered (${perTick} per statement every ` +
        `${TICK_MS} ms); commit -> broker append p50 ${ms(append, 50)} ms, p99 ${ms(append, 99)} ms, max ` +
        `${ms(append, 100)} ms; commit -> read_committed consumer p50 ${ms(receipt, 50)} ms, p99 ${ms(receipt, 99)} ms`,
    );
    const size = Math.round((seen.keyBytes + seen.valueBytes + seen.headerBytes) / seen.records);
    return { next: id, size };
  } finally {
    follower.stop();
    if (pgcdc.child.exitCode === null) await pgcdc.stop();
  }
}
