/**
 * The Redis sink (at-least-once) against the sink conformance suite (test/harness/sink-conformance.ts),
 * on a real redis-server (AOF, appendfsync always). The destination is read back with XRANGE on a
 * connection of its own: each stream's entries' `event` fields, in stream order, per key (the default
 * key template: the topic). A failure is a key of the wrong type (a plain string) where a topic's
 * stream would go; the SIGKILL rule runs the sink in a child process built through the registry.
 */
import { ChildSink } from '../harness/child-sink.ts';
import { requireOrSkip } from '../harness/pg.ts';
import { readStream, redisAvailable, redisForFile, streamKeys } from '../harness/redis.ts';
import { sinkConformance, type DurableEvents } from '../harness/sink-conformance.ts';
import { redisOptionsSchema } from '../../src/sinks/redis/options.ts';
import { RedisSink } from '../../src/sinks/redis/redis-sink.ts';

const skip = requireOrSkip(redisAvailable(), 'redis-server');
const redis = redisForFile();

if (skip === false) {
  sinkConformance({
    name: 'redis (at-least-once)',
    delivery: 'at-least-once',
    async setup() {
      const server = await redis();
      await server.command(['FLUSHALL']);
      const config = { kind: 'redis' as const, url: server.url() };
      const options = redisOptionsSchema.parse(config);
      const sinks: RedisSink[] = [];
      const children: ChildSink[] = [];
      return {
        makeSink() {
          const sink = new RedisSink(options);
          sinks.push(sink);
          return sink;
        },
        async readDurable(): Promise<DurableEvents> {
          const admin = await server.admin();
          try {
            const out = new Map<string, string[]>();
            for (const key of await streamKeys(admin, 'shop.*'))
              out.set(
                key,
                (await readStream(admin, key)).map((entry) => entry.fields.event ?? ''),
              );
            return out;
          } finally {
            await admin.close();
          }
        },
        async injectFailure(topic) {
          await server.command(['SET', topic, 'not a stream']);
          return async () => {
            await server.command(['DEL', topic]);
          };
        },
        async writeThenKill(batches) {
          const child = new ChildSink(config);
          children.push(child);
          await child.open(undefined);
          const last = batches.at(-1);
          if (last === undefined) throw new Error('writeThenKill needs a batch');
          for (const batch of batches.slice(0, -1)) await child.write(batch);
          return child.writeThenKill(last);
        },
        async dispose() {
          for (const sink of sinks) await sink.close();
          for (const child of children) await child.dispose();
          await server.command(['FLUSHALL']);
        },
      };
    },
  });
}
