/** The NATS JetStream sink kind: one message per event, deduplicated by event id (nats-sink.ts, docs/nats.md). */
import { CdcError } from '../../core/errors.ts';
import { defineSinkKind } from '../kind.ts';
import { NatsSink } from './nats-sink.ts';
import { natsOptionsSchema, type NatsOptions } from './options.ts';

export const natsKind = defineSinkKind<NatsOptions>({
  kind: 'nats',
  summary: 'messages to a NATS JetStream stream (--nats-url; at-least-once, deduplicated by event id)',
  schema: natsOptionsSchema,
  create: (options, context) => {
    if (context.capture === undefined)
      throw new CdcError('INTERNAL', 'the NATS sink needs the capture it serves (slot, database, topic prefix)');
    return new NatsSink(options, context.capture, context.log);
  },
});

export { NatsSink } from './nats-sink.ts';
export type { NatsCapture } from './nats-sink.ts';
export type { NatsOptions } from './options.ts';
