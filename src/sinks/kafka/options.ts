/**
 * The `sink` section for `kind: kafka` (docs/kafka.md has every option with its default). Secrets
 * (the SASL password, a TLS key's passphrase) come from a file or an environment variable, never
 * from the configuration or a flag, so they are never in a process listing or a log.
 */
import { z } from 'zod';
import { secretSourceSchema, certAndKeyTogether, tlsFileFields } from '../secrets.ts';

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[^\s:,[\]]+):\d{1,5}$/, 'must be host:port, such as kafka-1.example.com:9092');

const topicRule = z.strictObject({
  /** A topic name or a glob (`*` matches any run of characters): the first rule that matches applies. */
  pattern: z.string().min(1),
  partitions: z.number().int().min(1).max(100_000).optional(),
  /** -1: the broker's default.replication.factor. */
  replicationFactor: z.number().int().min(-1).max(32).optional(),
  /** Topic configs such as `cleanup.policy: compact`, `retention.ms: "604800000"`. */
  config: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
});

export type TopicRule = z.infer<typeof topicRule>;

export const KAFKA_DELIVERY_MODES = ['exactly-once', 'at-least-once'] as const;
export type KafkaDeliveryMode = (typeof KAFKA_DELIVERY_MODES)[number];

export const kafkaOptionsSchema = z.strictObject({
  kind: z.literal('kafka'),
  /** `host:port` of one or more brokers (a list, or one comma-separated string). */
  bootstrapServers: z
    .union([z.string(), z.array(z.string())], {
      error: 'is required: host:port,... of one or more brokers (--kafka-bootstrap)',
    })
    .transform((value) =>
      (Array.isArray(value) ? value : value.split(','))
        .map((server) => server.trim())
        .filter((server) => server !== ''),
    )
    .pipe(z.array(hostPort).min(1, 'must name at least one broker (host:port)')),
  clientId: z.string().min(1).default('pgcdc'),
  /**
   * exactly-once: one Kafka transaction per batch of whole source transactions, with the checkpoint
   * in the same transaction. at-least-once: idempotent producer, checkpoint after the records.
   */
  delivery: z.enum(KAFKA_DELIVERY_MODES).default('exactly-once'),
  /** Default `pgcdc-<database>-<slot>`: a second pgcdc on the same slot fences the first. */
  transactionalId: z.string().min(1).max(200).optional(),
  /** Where checkpoints are kept (compacted). Default `<topic prefix>.pgcdc-offsets`. */
  offsetsTopic: z.string().min(1).max(249).optional(),
  /** Acknowledgement by every in-sync replica: the only setting under which "durable" holds. */
  acks: z.literal('all').default('all'),
  compression: z.enum(['none', 'gzip', 'snappy', 'lz4', 'zstd']).default('none'),
  /** Upper bound of one produce request's records, in bytes before compression. */
  batchBytes: z
    .number()
    .int()
    .min(1024)
    .max(256 * 1024 * 1024)
    .default(1_000_000),
  /** When set, the longest an event waits for its batch (overrides batch.maxDelayMs). */
  lingerMs: z.number().int().min(0).max(60_000).optional(),
  /** A broker that does not answer a request within this long is treated as failed (retried). */
  requestTimeoutMs: z.number().int().min(1000).max(600_000).default(30_000),
  /** The Kafka transaction timeout (exactly-once): a transaction open longer is aborted by Kafka. */
  transactionTimeoutMs: z.number().int().min(1000).max(900_000).default(60_000),
  /** The largest record pgcdc sends; a larger event stops pgcdc with its table and key named. */
  messageMaxBytes: z
    .number()
    .int()
    .min(1024)
    .max(256 * 1024 * 1024)
    .default(1_000_000),
  /** A record with a null value after each delete, so compaction removes the key (as Debezium does). */
  tombstones: z.boolean().default(true),
  tls: z
    .strictObject({
      enabled: z.boolean().default(true),
      ...tlsFileFields,
      keyPassphrase: secretSourceSchema.optional(),
    })
    .refine(...certAndKeyTogether)
    .optional(),
  sasl: z
    .strictObject({
      mechanism: z.enum(['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512']),
      username: z.string().min(1),
      password: secretSourceSchema,
    })
    .optional(),
  topics: z
    .strictObject({
      /** Create missing topics through the admin API (off: a missing topic stops pgcdc at start). */
      create: z.boolean().default(true),
      /** Defaults for created topics: 1 partition, the broker's replication factor. */
      partitions: z.number().int().min(1).max(100_000).default(1),
      replicationFactor: z.number().int().min(-1).max(32).default(-1),
      /** Per topic pattern, in order; the first match overrides the defaults. */
      rules: z.array(topicRule).default([]),
    })
    .default({ create: true, partitions: 1, replicationFactor: -1, rules: [] }),
});

export type KafkaOptions = z.infer<typeof kafkaOptionsSchema>;

export type { SecretSource } from '../secrets.ts';
