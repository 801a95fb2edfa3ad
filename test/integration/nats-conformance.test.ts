/**
 * The NATS JetStream sink against the sink conformance suite (test/harness/sink-conformance.ts), on a
 * real nats-server with JetStream. The destination is read back by an ordered consumer; each message's
 * payload is the event line. Each fixture is its own stream (named after a random capture) whose
 * subjects are the suite's three topics, and its own KV key; a failure is an event on a topic the
 * stream does not take, which the sink refuses before publishing anything of the batch.
 *
 * At-least-once: events sent again after a restart are dropped by JetStream's duplicate window, so
 * the readback holds each event once even where the suite would allow repeats.
 */
import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { natsOptionsSchema } from '../../src/sinks/nats/options.ts';
import { NatsSink } from '../../src/sinks/nats/nats-sink.ts';
import { ChildSink } from '../harness/child-sink.ts';
import { natsAvailable, natsForFile } from '../harness/nats.ts';
import { requireOrSkip } from '../harness/pg.ts';
import { sinkConformance, type DurableEvents } from '../harness/sink-conformance.ts';

const skip = requireOrSkip(natsAvailable(), 'nats-server');

const nats = natsForFile();

/** The suite's topics (sink-conformance.ts ORDERS, ITEMS, USERS). */
const SUITE_SUBJECTS = ['shop.public.orders', 'shop.public.items', 'shop.public.users'];

if (skip === false) {
  sinkConformance({
    name: 'nats',
    delivery: 'at-least-once',
    async setup() {
      const server = await nats();
      const slot = `conformance_${randomBytes(4).toString('hex')}`;
      const capture = { slot, database: 'shop', topicPrefix: 'shop' };
      const stream = `conformance-${slot}`;
      const config = {
        kind: 'nats' as const,
        servers: server.url,
        stream: { name: stream, subjects: SUITE_SUBJECTS },
      };
      const options = natsOptionsSchema.parse(config);
      const sinks: NatsSink[] = [];
      const children: ChildSink[] = [];
      return {
        makeSink() {
          const sink = new NatsSink(options, capture);
          sinks.push(sink);
          return sink;
        },
        async readDurable(): Promise<DurableEvents> {
          const out = new Map<string, string[]>();
          for (const message of await server.readStream(stream)) {
            const topic = message.headers['Pgcdc-Topic'] ?? '';
            assert.equal(message.subject, topic, 'the subject of a suite topic is the topic');
            const lines = out.get(topic) ?? [];
            lines.push(message.payload);
            out.set(topic, lines);
          }
          return out;
        },
        // The stream takes only the suite's three subjects: a new topic is refused before anything
        // of its batch is published. Nothing to undo.
        injectFailure: () => Promise.resolve(() => Promise.resolve()),
        async writeThenKill(batches) {
          process.env.PGCDC_TEST_SINK_CAPTURE = JSON.stringify(capture);
          const child = new ChildSink(config);
          delete process.env.PGCDC_TEST_SINK_CAPTURE;
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
          await server.deleteStream(stream);
        },
      };
    },
  });
}
