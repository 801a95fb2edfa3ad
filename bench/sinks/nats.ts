/**
 * For bench/sinks.ts: the NATS JetStream target. nats-server with JetStream (file storage) started by
 * the test harness; pgcdc publishes into the stream its sink creates (`pgcdc-<prefix>`). There is no
 * `nats bench` in Debian's packages, so the reference is a minimal publisher with the official client
 * (bench/sinks/nats-reference.ts, a child process): the same number of messages of the same size into
 * a file-storage stream of the same server, each with a Nats-Msg-Id, as many awaiting their PubAck at
 * once as pgcdc allows (its `maxInFlight` default, 1024).
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { jetstreamManager } from '@nats-io/jetstream';
import { defaultStreamName } from '../../src/sinks/nats/subjects.ts';
import { natsAvailable, NatsServer } from '../../test/harness/nats.ts';
import type { SinkTarget } from './target.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const IN_FLIGHT = 1024;

export const natsTarget: SinkTarget<NatsServer> = {
  name: 'nats',
  available: natsAvailable,
  start: () => NatsServer.start(),
  sinkArgs: (server) => ['--sink', 'nats', '--nats-url', server.url],
  delivered: (server, prefix) =>
    server.with(async (nc) => {
      const info = await (await jetstreamManager(nc)).streams.info(defaultStreamName(prefix));
      return {
        events: info.state.messages,
        bytes: info.state.bytes,
        note: `stream ${info.config.name}, bytes as the stream stores them (headers and subjects included)`,
      };
    }),
  async reference(server, events, eventBytes) {
    const started = performance.now();
    await new Promise<void>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          path.join(HERE, 'nats-reference.ts'),
          server.url,
          `${events}`,
          `${eventBytes}`,
          `${IN_FLIGHT}`,
        ],
        { stdio: ['ignore', 'inherit', 'inherit'] },
      );
      child.once('error', reject);
      child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`nats reference exited with ${code}`))));
    });
    const ms = performance.now() - started;
    const stored = await server.with(
      async (nc) => (await (await jetstreamManager(nc)).streams.info('bench-reference')).state.messages,
    );
    if (stored !== events) throw new Error(`nats reference: the stream holds ${stored} messages, expected ${events}`);
    return { ms, what: `official client, JetStream publish with Nats-Msg-Id, ${IN_FLIGHT} in flight` };
  },
  stop: (server) => server.kill(),
};
