/**
 * The cost of the library's parsed events (docs/library.md, "Raw or parsed"): parseBatch over
 * batches of realistic change events (the envelope of a narrow and of a wider row), against the
 * raw mode's cost (none: the handler gets the batch's bytes), and against JSON.parse line by line.
 *
 *   npx tsx bench/library-parse.ts
 */
import { parseBatch } from '../src/library/handler-sink.ts';
import { EventBatch, TopicRegistry } from '../src/sinks/batch.ts';

const SOURCE =
  '{"version":"0.1.0","connector":"postgresql","name":"shop","db":"shop","schema":"public","table":"orders",' +
  '"snapshot":"false","txId":7712,"lsn":27409352,"sequence":"[\\"27409000\\",\\"27409352\\"]",' +
  '"commit_lsn":"0/1A2B3C8","ts_ms":1763719200123,"ts_us":1763719200123456,"ts_ns":1763719200123456000,"xmin":null}';

function line(n: number, wide: boolean): string {
  const after = wide
    ? `{"id":${n},"customer_id":${n % 977},"total":"${(n % 10000) / 100}","status":"paid","items":["a","b","c"],` +
      `"meta":{"gift":true,"note":"leave at the door"},"created_at":"2026-11-21T10:00:00.123456Z",` +
      `"updated_at":"2026-11-21T10:05:00.654321Z","email":"customer${n}@example.com"}`
    : `{"id":${n},"balance":${n * 3}}`;
  return (
    `{"id":"0/1A2B3C8:${n}","topic":"shop.public.orders","key":{"id":${n}},"value":{"before":null,"after":${after},` +
    `"source":${SOURCE},"op":"c","ts_ms":1763719200125,"ts_us":1763719200125000,"ts_ns":1763719200125000000,` +
    `"transaction":{"id":"7712:0/1A2B3C8","total_order":${n + 1},"data_collection_order":${n + 1}}}}`
  );
}

const BATCH = 10_000;
const ROUNDS = 30;

for (const wide of [false, true]) {
  const registry = new TopicRegistry();
  const batch = EventBatch.of(
    Array.from({ length: BATCH }, (_, n) => ({ topic: 'shop.public.orders', line: line(n, wide) })),
    registry,
  );
  const measure = (what: string, parse: () => unknown): void => {
    for (let i = 0; i < 3; i++) parse(); // warm up
    const start = process.hrtime.bigint();
    for (let i = 0; i < ROUNDS; i++) parse();
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const events = BATCH * ROUNDS;
    console.log(
      `${wide ? 'wide ' : 'narrow'} row (${Math.round(batch.data.length / BATCH)} bytes/event) ${what}: ` +
        `${Math.round(events / seconds / 1000)}k events/s, ${((seconds / events) * 1e6).toFixed(2)} µs/event`,
    );
  };
  measure('parseBatch', () => parseBatch(batch));
  measure('JSON.parse per line', () => {
    const out: unknown[] = [];
    for (let i = 0; i < batch.count; i++) out.push(JSON.parse(batch.line(i)));
    return out;
  });
}
