/**
 * The Kafka sink (exactly-once) against the sink conformance suite (test/harness/sink-conformance.ts),
 * on a real broker. The destination is read back by Kafka's own Java consumer (read_committed), each
 * record put together again as the event line it came from. Each fixture is its own capture (its own
 * transactional id and offsets topic); the suite's data topics are deleted after each test.
 *
 * Where Kafka's contract differs (contract.ts SinkCheckpoints): a write is durable when it resolves
 * and visible once `checkpoints.store` commits its transaction (`visibleOnCheckpoint`); a crash or a
 * close before that discards it, which stands in for the torn tail of a file. A failure is a topic
 * whose max.message.bytes refuses every record.
 */
import { randomBytes } from 'node:crypto';
import type { Admin } from '@platformatic/kafka';
import { kafkaOptionsSchema } from '../../src/sinks/kafka/options.ts';
import { KafkaSink } from '../../src/sinks/kafka/kafka-sink.ts';
import { dumpTopics, kafkaAvailable, startKafka, type DumpedRecord, type KafkaCluster } from '../harness/kafka.ts';
import { eventually, requireOrSkip } from '../harness/pg.ts';
import { sinkConformance, type DurableEvents } from '../harness/sink-conformance.ts';

const skip = requireOrSkip(kafkaAvailable(), 'Apache Kafka (java, and the test/kafka jars or mvn)');

/** The suite's topics are `shop.public.<table>`. */
const SUITE_TOPICS = 'shop\\.public\\..*';

let cluster: Promise<{ kafka: KafkaCluster; admin: Admin }> | undefined;
function kafka(): Promise<{ kafka: KafkaCluster; admin: Admin }> {
  cluster ??= startKafka().then((started) => ({ kafka: started, admin: started.admin() }));
  return cluster;
}

/** The event line a record came from (records.ts takes the line apart; this puts it together). */
function lineOf(record: DumpedRecord): string {
  const id = record.headers['pgcdc.id'] ?? '';
  return `{"id":"${id}","topic":"${record.topic}","key":${record.key ?? 'null'},"value":${record.value ?? 'null'}}`;
}

async function readTopics(bootstrap: string): Promise<DurableEvents> {
  const out = new Map<string, string[]>();
  for (const record of await dumpTopics(bootstrap, SUITE_TOPICS)) {
    const lines = out.get(record.topic) ?? [];
    lines.push(lineOf(record));
    out.set(record.topic, lines);
  }
  return out;
}

async function deleteTopics(admin: Admin, pattern: RegExp): Promise<void> {
  const topics = (await admin.listTopics()).filter((topic) => pattern.test(topic));
  if (topics.length === 0) return;
  await admin.deleteTopics({ topics });
  await eventually(
    async () => ((await admin.listTopics()).some((topic) => pattern.test(topic)) ? undefined : true),
    'the test topics deleted',
  );
}

if (skip === false) {
  sinkConformance({
    name: 'kafka (exactly-once)',
    delivery: 'exactly-once',
    visibleOnCheckpoint: true,
    notApplicable: {
      unknownDestination:
        'kafka: the checkpoint lives in the offsets topic, next to the events; data topics may be shared with ' +
        'other producers, so records already in them say nothing about what this capture delivered',
    },
    async setup() {
      const { kafka: broker, admin } = await kafka();
      const capture = { slot: `conformance_${randomBytes(4).toString('hex')}`, database: 'shop', topicPrefix: '' };
      capture.topicPrefix = capture.slot;
      const options = kafkaOptionsSchema.parse({
        kind: 'kafka',
        bootstrapServers: broker.bootstrap,
      });
      const sinks: KafkaSink[] = [];
      return {
        makeSink() {
          const sink = new KafkaSink(options, capture);
          sinks.push(sink);
          return sink;
        },
        readDurable: () => readTopics(broker.bootstrap),
        async injectFailure(topic) {
          // Every record is larger than 16 bytes: the broker refuses the batch (MESSAGE_TOO_LARGE).
          await admin.createTopics({
            topics: [topic],
            partitions: 1,
            replicas: 1,
            configs: [{ name: 'max.message.bytes', value: '16' }],
          });
          return () => deleteTopics(admin, new RegExp(`^${topic.replace(/\./g, '\\.')}$`));
        },
        async dispose() {
          for (const sink of sinks) await sink.close();
          // A transaction a test left open (a crash stand-in) is aborted by taking the id over, so it
          // holds no read_committed reader back; then the next test starts from empty topics.
          await new KafkaSink(options, capture).checkpoints.load();
          await deleteTopics(admin, new RegExp(`^(${SUITE_TOPICS}|${capture.slot}\\..*)$`));
        },
      };
    },
  });
}
