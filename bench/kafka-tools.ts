/**
 * For bench/kafka.ts: Kafka's own Java tools from the jars the test harness uses (test/kafka/target/lib):
 * the reference producer (org.apache.kafka.tools.ProducerPerformance, what kafka-producer-perf-test.sh
 * runs) and the reader (bench/KafkaTally.java, a read_committed Java consumer).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Admin } from '@platformatic/kafka';
import { kafkaClasspath } from '../test/harness/kafka.ts';

const TALLY = path.join(path.dirname(fileURLToPath(import.meta.url)), 'KafkaTally.java');

export interface PerfResult {
  /** From spawn to exit: JVM start, metadata, producing, the last acknowledgement, close. */
  wallMs: number;
  /** The tool's own figure (records/s from its first send to its last acknowledgement). */
  reportedRate: number;
  /** Its summary line, as printed. */
  summary: string;
  /** Its send-to-acknowledgement latency percentiles, ms. */
  p50Ms?: number;
  p99Ms?: number;
  maxMs?: number;
}

/** Creates a one-partition topic (the brokers do not create topics on first use). */
export async function createTopic(
  bootstrap: string,
  topic: string,
  configs: Record<string, string> = {},
): Promise<void> {
  const admin = new Admin({ clientId: 'pgcdc-bench', bootstrapBrokers: bootstrap.split(',') });
  try {
    await admin.createTopics({
      topics: [topic],
      partitions: 1,
      replicas: 1,
      configs: Object.entries(configs).map(([name, value]) => ({ name, value })),
    });
  } finally {
    await admin.close();
  }
}

/**
 * ProducerPerformance: `records` records of `size` random bytes to `topic`, acks=all, idempotent,
 * unthrottled unless `throughput` (records/s) is given.
 */
export async function producerPerformance(
  bootstrap: string,
  topic: string,
  records: number,
  size: number,
  transactionMs?: number,
  extraProps: readonly string[] = [],
  throughput = -1,
): Promise<PerfResult> {
  const args = [
    '-cp',
    kafkaClasspath(),
    'org.apache.kafka.tools.ProducerPerformance',
    '--topic',
    topic,
    '--num-records',
    String(records),
    '--record-size',
    String(size),
    '--throughput',
    String(throughput),
    ...(transactionMs === undefined
      ? []
      : ['--transactional-id', `${topic}-perf`, '--transaction-duration-ms', String(transactionMs)]),
    '--producer-props',
    `bootstrap.servers=${bootstrap}`,
    'acks=all',
    'enable.idempotence=true',
    ...extraProps,
  ];
  await createTopic(bootstrap, topic);
  const started = performance.now();
  const { code, stdout, stderr } = await run(spawn('java', args, { stdio: ['ignore', 'pipe', 'pipe'] }));
  const wallMs = performance.now() - started;
  if (code !== 0) throw new Error(`ProducerPerformance exited with ${code}: ${stderr}`);
  // The last line: "N records sent, X records/sec (Y MB/sec), A ms avg latency, M ms max latency, ..."
  const summary = stdout.trim().split('\n').pop() ?? '';
  const match = /records sent, ([\d.]+) records\/sec/.exec(summary);
  if (match === null) throw new Error(`ProducerPerformance printed no summary: ${stdout}`);
  return { wallMs, reportedRate: Number(match[1]), summary, ...latencyPercentiles(summary) };
}

/** "..., 2 ms 50th, 4 ms 95th, 20 ms 99th, 110 ms 99.9th." in the summary line. */
function latencyPercentiles(summary: string): { p50Ms?: number; p99Ms?: number; maxMs?: number } {
  const at = (pattern: RegExp): number | undefined => {
    const match = pattern.exec(summary);
    return match === null ? undefined : Number(match[1]);
  };
  return { p50Ms: at(/([\d.]+) ms 50th/), p99Ms: at(/([\d.]+) ms 99th/), maxMs: at(/([\d.]+) ms max latency/) };
}

export interface Tally {
  records: number;
  tombstones: number;
  keyBytes: number;
  valueBytes: number;
  headerBytes: number;
  /** Record timestamp minus the event's source commit time, ms (see KafkaTally.java). */
  appendMs: number[];
  /** The follower's receipt time minus the event's source commit time, ms (follow mode only). */
  receiptMs: number[];
}

/** Every committed record of the topics matching `topicRegex`, counted by Kafka's Java consumer. */
export async function tallyTopics(bootstrap: string, topicRegex: string, latencies = false): Promise<Tally> {
  const extra = latencies ? ['latencies'] : [];
  const child = spawn('java', ['-cp', kafkaClasspath(), TALLY, bootstrap, topicRegex, 'tally', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const { code, stdout, stderr } = await run(child);
  if (code !== 0) throw new Error(`KafkaTally exited with ${code}: ${stderr}`);
  return JSON.parse(stdout) as Tally;
}

/**
 * A read_committed Java consumer following the topics matching `topicRegex` from their beginning until
 * `records` records with a value have arrived. Resolves `ready` once it is assigned and positioned.
 */
export function followTopics(
  bootstrap: string,
  topicRegex: string,
  records: number,
): { ready: Promise<void>; done: Promise<Tally>; stop: () => void } {
  const child = spawn('java', ['-cp', kafkaClasspath(), TALLY, bootstrap, topicRegex, 'follow', String(records)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const ready = new Promise<void>((resolve, reject) => {
    child.stderr.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('ready')) resolve();
    });
    child.once('exit', () => reject(new Error('KafkaTally follow exited before it was ready')));
  });
  const done = run(child).then(({ code, stdout, stderr }) => {
    if (code !== 0) throw new Error(`KafkaTally follow exited with ${code}: ${stderr}`);
    return JSON.parse(stdout) as Tally;
  });
  return { ready, done, stop: () => child.kill('SIGKILL') };
}

function run(child: ChildProcess): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The p-th percentile (0..100) of `values` (nearest rank). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}
