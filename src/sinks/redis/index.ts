/** The Redis sink kind: one Redis stream per table, XADD per event (redis-sink.ts, docs/redis.md). */
import { defineSinkKind } from '../kind.ts';
import { RedisSink } from './redis-sink.ts';
import { redisOptionsSchema, type RedisOptions } from './options.ts';

export const redisKind = defineSinkKind<RedisOptions>({
  kind: 'redis',
  summary: 'one Redis stream per table, an XADD per event (--redis-url; at-least-once, dedup by the id field)',
  schema: redisOptionsSchema,
  create: (options, context) => new RedisSink(options, context.log),
});

export { RedisSink } from './redis-sink.ts';
export { RedisConnection } from './client.ts';
export { type RedisOptions, redisOptionsSchema } from './options.ts';
