/**
 * The child side of `ChildSink` (child-sink.ts): builds a sink through the registry from the JSON
 * configuration in argv[2] and runs the parent's open/write/close requests on it, each as soon as
 * it arrives (so writes overlap exactly as the parent issued them). The stdout sink writes to this
 * process's real standard output, a pipe the parent reads.
 */
import { CdcError } from '../../src/core/errors.ts';
import { EventBatch, TopicRegistry } from '../../src/sinks/batch.ts';
import type { SinkPosition } from '../../src/sinks/contract.ts';
import { createSink } from '../../src/sinks/registry.ts';
import type { ChildReply, ChildRequest } from './child-sink.ts';

const config = JSON.parse(process.argv[2] ?? '{}') as { kind: string };
// Kinds that name things after their capture (Kafka, NATS) get it from the parent's environment.
const capture = process.env.PGCDC_TEST_SINK_CAPTURE;
const sink = createSink(
  config,
  capture === undefined
    ? {}
    : { capture: JSON.parse(capture) as { slot: string; database: string; topicPrefix: string } },
);
const topics = new TopicRegistry();
/** Bytes of every batch whose write resolved: all of them were handed to the sink's device. */
let resolvedBytes = 0;

function reply(message: ChildReply, then?: () => void): void {
  process.send?.(message, undefined, {}, () => then?.());
}

async function run(request: ChildRequest): Promise<{ position?: SinkPosition }> {
  switch (request.op) {
    case 'open':
      await sink.open(request.resume);
      return {};
    case 'write': {
      const batch = EventBatch.of(request.events, topics);
      const position = await sink.write(batch);
      resolvedBytes += batch.data.length;
      return { position };
    }
    case 'close':
      await sink.close();
      return {};
  }
}

process.on('message', (request: ChildRequest) => {
  run(request).then(
    ({ position }) => {
      const then =
        request.op === 'write' && request.killAfter === true ? () => process.kill(process.pid, 'SIGKILL') : undefined;
      reply({ seq: request.seq, ok: true, ...(position === undefined ? {} : { position }), resolvedBytes }, then);
    },
    (error: unknown) => {
      const cdc = error instanceof CdcError ? error : new CdcError('INTERNAL', String(error));
      reply({
        seq: request.seq,
        ok: false,
        code: cdc.code,
        message: cdc.message,
        retryable: cdc.retryable,
        resolvedBytes,
      });
    },
  );
});
// The parent disconnecting (after close, or when it dies) ends this process.
process.on('disconnect', () => process.exit(0));
