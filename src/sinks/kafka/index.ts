/** The Kafka sink kind: records to Apache Kafka, exactly-once by default (kafka-sink.ts, docs/kafka.md). */
import { CdcError } from '../../core/errors.ts';
import { defineSinkKind } from '../kind.ts';
import { KafkaSink } from './kafka-sink.ts';
import { kafkaOptionsSchema, type KafkaOptions } from './options.ts';

export const kafkaKind = defineSinkKind<KafkaOptions>({
  kind: 'kafka',
  summary: 'records to Apache Kafka topics (--kafka-bootstrap; exactly-once transactions by default)',
  schema: kafkaOptionsSchema,
  create: (options, context) => {
    if (context.capture === undefined)
      throw new CdcError('INTERNAL', 'the Kafka sink needs the capture it serves (slot, database, topic prefix)');
    return new KafkaSink(options, context.capture, context.log);
  },
});

export { KafkaSink } from './kafka-sink.ts';
export type { KafkaCapture } from './kafka-sink.ts';
export { KAFKA_DELIVERY_MODES, type KafkaOptions } from './options.ts';
