/**
 * Topics pgcdc writes to: checked at start (before the slot is used) and created when
 * `topics.create` is on, with partitions, replication factor and configs per topic pattern. The
 * offsets topic is always compacted: only the latest checkpoint per slot matters.
 */
import type { Admin } from '@platformatic/kafka';
import { CdcError } from '../../core/errors.ts';
import { kafkaErrorNames } from './client.ts';
import type { KafkaOptions, TopicRule } from './options.ts';

/** What a new topic gets: the first matching rule over the defaults. */
export interface TopicSpec {
  readonly partitions: number;
  readonly replicationFactor: number;
  readonly config: Readonly<Record<string, string>>;
}

function globMatches(pattern: string, name: string): boolean {
  if (!pattern.includes('*')) return pattern === name;
  const regex = new RegExp(`^${pattern.split('*').map(escapeRegex).join('.*')}$`);
  return regex.test(name);
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export function topicSpec(options: KafkaOptions, topic: string): TopicSpec {
  const rule: TopicRule | undefined = options.topics.rules.find((r) => globMatches(r.pattern, topic));
  const config: Record<string, string> = {};
  for (const [name, value] of Object.entries(rule?.config ?? {})) config[name] = String(value);
  return {
    partitions: rule?.partitions ?? options.topics.partitions,
    replicationFactor: rule?.replicationFactor ?? options.topics.replicationFactor,
    config,
  };
}

/** The offsets topic's settings: compacted, one partition (its records are read back in order). */
export function offsetsTopicSpec(options: KafkaOptions, topic: string): TopicSpec {
  const spec = topicSpec(options, topic);
  return {
    partitions: 1,
    replicationFactor: spec.replicationFactor,
    config: {
      ...spec.config,
      'cleanup.policy': 'compact',
      // Compaction only cleans closed segments: small ones keep the topic short to read at start.
      'segment.bytes': spec.config['segment.bytes'] ?? String(16 * 1024 * 1024),
    },
  };
}

/**
 * Makes sure every topic in `topics` exists: creates the missing ones when allowed (`specFor` gives
 * their settings), else refuses with one line naming them. Resolves the names now known to exist.
 */
export async function ensureTopics(
  admin: Admin,
  options: KafkaOptions,
  topics: readonly string[],
  specFor: (topic: string) => TopicSpec,
): Promise<void> {
  if (topics.length === 0) return;
  const existing = new Set(await admin.listTopics());
  const missing = topics.filter((topic) => !existing.has(topic));
  if (missing.length === 0) return;
  if (!options.topics.create) {
    throw new CdcError(
      'CONFIG_INVALID',
      `Kafka topic${missing.length === 1 ? '' : 's'} ${missing.join(', ')} ${missing.length === 1 ? 'does' : 'do'} ` +
        'not exist and sink.topics.create is off',
      { hint: 'create them (kafka-topics.sh --create), or set sink.topics.create: true to let pgcdc create them' },
    );
  }
  for (const topic of missing) {
    const spec = specFor(topic);
    try {
      await admin.createTopics({
        topics: [topic],
        partitions: spec.partitions,
        replicas: spec.replicationFactor,
        configs: Object.entries(spec.config).map(([name, value]) => ({ name, value })),
      });
    } catch (error) {
      const names = kafkaErrorNames(error);
      if (names.has('TOPIC_ALREADY_EXISTS')) continue;
      if (names.has('TOPIC_AUTHORIZATION_FAILED') || names.has('CLUSTER_AUTHORIZATION_FAILED'))
        throw new CdcError('SINK_FAILED', `not authorized to create Kafka topic ${topic}`, {
          hint: 'grant CREATE on the topic (or the cluster), or create the topics beforehand',
          cause: error,
        });
      if (names.has('INVALID_REPLICATION_FACTOR') || names.has('INVALID_CONFIG') || names.has('POLICY_VIOLATION'))
        throw new CdcError('CONFIG_INVALID', `cannot create Kafka topic ${topic}: ${[...names].join(', ')}`, {
          hint: 'check sink.topics (partitions, replicationFactor, rules[].config) against the cluster',
          cause: error,
        });
      throw error;
    }
  }
}
