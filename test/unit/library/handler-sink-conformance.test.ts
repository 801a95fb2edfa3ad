/**
 * The library's handler sink (src/library/handler-sink.ts) against the sink conformance suite, with
 * a raw handler that keeps every line it accepted in memory (the caller's "destination"). At least
 * once: the handler's store is what the caller made durable; the sink itself keeps nothing.
 */
import { HandlerSink } from '../../../src/library/handler-sink.ts';
import type { EventBatch } from '../../../src/sinks/batch.ts';
import { sinkConformance, type DurableEvents } from '../../harness/sink-conformance.ts';

sinkConformance({
  name: 'handler',
  delivery: 'at-least-once',
  notApplicable: { unknownDestination: 'the handler sink cannot see what the caller stored: it is at least once' },
  setup() {
    const accepted = new Map<string, string[]>();
    const failing = new Set<string>();
    const handler = (batch: EventBatch): Promise<void> => {
      for (let i = 0; i < batch.count; i++)
        if (failing.has(batch.topic(i))) return Promise.reject(new Error(`the store refuses ${batch.topic(i)}`));
      for (let i = 0; i < batch.count; i++) {
        const lines = accepted.get(batch.topic(i)) ?? [];
        lines.push(batch.line(i));
        accepted.set(batch.topic(i), lines);
      }
      return Promise.resolve();
    };
    return Promise.resolve({
      makeSink: () => new HandlerSink(handler, () => 'retry'),
      readDurable: (): Promise<DurableEvents> => Promise.resolve(accepted),
      injectFailure(topic: string) {
        failing.add(topic);
        return Promise.resolve(() => Promise.resolve(void failing.delete(topic)));
      },
      dispose: () => Promise.resolve(),
    });
  },
});
