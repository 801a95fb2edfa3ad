/**
 * The in-memory test sink (test/harness/memory-sink.ts) against the sink conformance suite: the
 * other tests rely on it behaving like a real sink. Its store plays the destination.
 */
import { MemorySink, MemorySinkStore } from '../../harness/memory-sink.ts';
import { sinkConformance, type DurableEvents } from '../../harness/sink-conformance.ts';

function readStore(store: MemorySinkStore): DurableEvents {
  const out = new Map<string, string[]>();
  for (const event of store.events) {
    const lines = out.get(event.topic) ?? [];
    lines.push(event.line);
    out.set(event.topic, lines);
  }
  if (store.tornTail !== undefined) {
    const lines = out.get(store.tornTail.topic) ?? [];
    lines.push(store.tornTail.partial);
    out.set(store.tornTail.topic, lines);
  }
  return out;
}

sinkConformance({
  name: 'memory',
  delivery: 'exactly-once',
  setup() {
    const store = new MemorySinkStore();
    let latest: MemorySink | undefined;
    return Promise.resolve({
      makeSink: () => (latest = new MemorySink({ store })),
      readDurable: () => Promise.resolve(readStore(store)),
      tear: (topic: string) => Promise.resolve(store.tear(topic)),
      injectFailure(topic: string) {
        const sink = latest;
        sink?.failWritesTo(topic);
        return Promise.resolve(() => Promise.resolve(sink?.healTopic(topic)));
      },
      dispose: () => Promise.resolve(),
    });
  },
});
