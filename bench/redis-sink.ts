/**
 * Redis sink throughput, sink alone (no PostgreSQL): --events narrow change events of the envelope's
 * layout, in batches of --batch, written by RedisSink (src/sinks/redis/) with up to --in-flight writes
 * outstanding, as Delivery issues them, into a redis-server on this machine started with the test
 * settings (appendonly yes, appendfsync always, no RDB) and no automatic AOF rewrite; against
 * redis-benchmark sending the same number of XADDs of the same field sizes to the same server,
 * pipelined --batch deep on one connection, in the same run.
 *
 *   npx tsx bench/redis-sink.ts [--events 1000000] [--batch 10000] [--in-flight 4]
 *
 * The last line is `ratio <sink events/s / redis-benchmark XADD/s>`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { freePort } from '../src/embedded/cluster.ts';
import { TopicRegistry, type EventBatch } from '../src/sinks/batch.ts';
import { EventBatchBuilder } from '../src/sinks/batch-builder.ts';
import { RedisConnection } from '../src/sinks/redis/client.ts';
import { redisOptionsSchema } from '../src/sinks/redis/options.ts';
import { RedisSink } from '../src/sinks/redis/redis-sink.ts';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    batch: { type: 'string', default: '10000' },
    'in-flight': { type: 'string', default: '4' },
  },
});
const EVENTS = Number(values.events);
const BATCH = Number(values.batch);
const IN_FLIGHT = Number(values['in-flight']);
const TOPIC = 'bench.public.narrow';

/** A narrow insert as envelope/json.ts lays it out (about 420 bytes). */
function line(n: number): string {
  const lsn = `0/${(0x1000000 + n).toString(16).toUpperCase()}`;
  return (
    `{"id":"${lsn}:0","topic":"${TOPIC}","key":{"id":${n}},"value":{"before":null,"after":{"id":${n},` +
    `"name":"row ${n}","qty":${n % 1000}},"source":{"version":"0.1.0","connector":"postgresql","name":"bench",` +
    `"ts_ms":1700000000000,"snapshot":"false","db":"bench","schema":"public","table":"narrow","txId":${n},` +
    `"lsn":${n},"xmin":null},"op":"c","ts_ms":1700000000000,"transaction":{"id":"${n}:${lsn}",` +
    `"total_order":1,"data_collection_order":1}}}`
  );
}

function batches(registry: TopicRegistry): EventBatch[] {
  const builder = new EventBatchBuilder(registry);
  const topic = registry.number(TOPIC);
  const out: EventBatch[] = [];
  for (let n = 0; n < EVENTS; n++) {
    builder.add(topic, line(n));
    if (builder.count === BATCH) out.push(builder.take(BATCH));
  }
  if (builder.count > 0) out.push(builder.take(builder.count));
  return out;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'pgcdc-bench-redis-'));
  const port = await freePort();
  // prettier-ignore
  const server = spawn('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always',
    '--save', '', '--logfile', '', '--loglevel', 'warning',
    // No AOF rewrite in the middle of either run: the first run would pay for rewrites the second does not.
    '--auto-aof-rewrite-percentage', '0',
  ], { stdio: ['ignore', 'ignore', 'inherit'] });
  try {
    const connect = (): Promise<RedisConnection> =>
      RedisConnection.connect({ host: '127.0.0.1', port, db: 0, connectTimeoutMs: 1000, requestTimeoutMs: 60_000 });
    let admin: RedisConnection | undefined;
    for (let attempt = 0; admin === undefined; attempt++) {
      admin = await connect().catch(async (error: unknown) => {
        if (attempt > 100) throw error;
        await new Promise((resolve) => setTimeout(resolve, 50));
        return undefined;
      });
    }
    const all = batches(new TopicRegistry());
    const bytes = all.reduce((sum, batch) => sum + batch.data.length, 0);
    const sink = new RedisSink(redisOptionsSchema.parse({ kind: 'redis', url: `redis://127.0.0.1:${port}/0` }));
    await sink.open(undefined);
    const started = process.hrtime.bigint();
    const pending: Promise<unknown>[] = [];
    for (const batch of all) {
      pending.push(sink.write(batch));
      if (pending.length >= IN_FLIGHT) await pending.shift();
    }
    await Promise.all(pending);
    const sinkSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    await sink.close();
    const length = await admin.command(['XLEN', TOPIC]);
    if (length !== EVENTS) throw new Error(`the stream holds ${String(length)} entries, not ${EVENTS}`);
    await admin.command(['DEL', TOPIC]);
    await admin.close();
    const sinkRate = EVENTS / sinkSeconds;
    console.log(
      `sink: ${EVENTS} events (${(bytes / 1e6).toFixed(0)} MB of lines) in ${sinkSeconds.toFixed(2)} s: ` +
        `${Math.round(sinkRate)} events/s, batches of ${BATCH}, ${IN_FLIGHT} in flight`,
    );

    const sample = line(123456);
    const benchStarted = process.hrtime.bigint();
    // prettier-ignore
    const reference = spawnSync('redis-benchmark', [
      '-p', String(port), '-n', String(EVENTS), '-c', '1', '-P', String(BATCH), '-q',
      'XADD', TOPIC, '*', 'id', '0/1000000:0', 'op', 'c', 'event', sample,
    ], { encoding: 'utf8' });
    const benchSeconds = Number(process.hrtime.bigint() - benchStarted) / 1e9;
    if (reference.status !== 0) throw new Error(`redis-benchmark failed: ${reference.stderr}`);
    const referenceRate = EVENTS / benchSeconds;
    console.log(
      `redis-benchmark XADD -c 1 -P ${BATCH}: ${EVENTS} in ${benchSeconds.toFixed(2)} s: ` +
        `${Math.round(referenceRate)} XADD/s (its own figure: ` +
        `${/([\d.]+ requests per second)/.exec(reference.stdout)?.[1] ?? 'none printed'})`,
    );
    console.log(`ratio ${(sinkRate / referenceRate).toFixed(2)}`);
  } finally {
    server.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
