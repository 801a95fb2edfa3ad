/**
 * The library's events: parseBatch (src/library/handler-sink.ts) gives each line as JSON.parse
 * would, with `op` lifted to the top, and the typed union (src/library/events.ts) narrows by `op`.
 * The type checks below are compiled by the project's typecheck (`npm run typecheck` covers test/):
 * each `@ts-expect-error` line must fail to compile, or the typecheck fails.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseBatch } from '../../../src/library/handler-sink.ts';
import { EventBatch } from '../../../src/sinks/batch.ts';
import { capture, type CdcEvent, type CdcOp } from '../../../src/index.ts';

const SOURCE =
  '{"version":"0.1.0","connector":"postgresql","name":"shop","db":"shop","schema":"public","table":"orders",' +
  '"snapshot":"false","txId":7,"lsn":100,"sequence":"[null,\\"100\\"]","commit_lsn":"0/64","ts_ms":1,"ts_us":1000,' +
  '"ts_ns":1000000,"xmin":null}';
const TX = '{"id":"7:0/64","total_order":1,"data_collection_order":1}';
const value = (before: string, after: string, op: string, tx = TX): string =>
  `{"before":${before},"after":${after},"source":${SOURCE},"op":"${op}","ts_ms":2,"ts_us":2000,"ts_ns":2000000,` +
  `"transaction":${tx}}`;
const change = (id: string, key: string, before: string, after: string, op: string, tx = TX): string =>
  `{"id":"${id}","topic":"shop.public.orders","key":${key},"value":${value(before, after, op, tx)}}`;
const LINES: readonly { topic: string; line: string }[] = [
  {
    topic: 'shop.public.orders',
    line: change('0/1:r:0:0', '{"id":1}', 'null', '{"id":1,"total":"1.50","note":"a\\nb"}', 'r', 'null'),
  },
  {
    topic: 'shop.public.orders',
    line: change('0/64:0', '{"id":2}', 'null', '{"id":2,"total":"2.00","note":"ü"}', 'c'),
  },
  {
    topic: 'shop.public.orders',
    line: change('0/64:1', '{"id":2}', 'null', '{"id":2,"total":"3.00","note":null}', 'u'),
  },
  { topic: 'shop.public.orders', line: change('0/64:2', '{"id":2}', '{"id":2,"total":null,"note":null}', 'null', 'd') },
  { topic: 'shop.public.orders', line: change('0/64:3', 'null', 'null', 'null', 't') },
  {
    topic: 'shop.message',
    line:
      `{"id":"0/70:message","topic":"shop.message","key":{"prefix":"audit"},"value":{"op":"m","ts_ms":3,` +
      `"source":${SOURCE},"message":{"prefix":"audit","content":"aGk="},"transaction":null}}`,
  },
  {
    topic: 'shop.transaction',
    line:
      '{"id":"0/64:begin","topic":"shop.transaction","key":{"id":"7:0/64"},"value":{"status":"BEGIN","id":"7:0/64",' +
      '"ts_ms":1,"event_count":null,"data_collections":null}}',
  },
  {
    topic: 'shop.transaction',
    line:
      '{"id":"0/64:end","topic":"shop.transaction","key":{"id":"7:0/64"},"value":{"status":"END","id":"7:0/64",' +
      '"ts_ms":1,"event_count":4,"data_collections":[{"data_collection":"public.orders","event_count":4}]}}',
  },
];

test('parseBatch: every line as JSON.parse reads it, with op lifted to the top, in order', () => {
  const events = parseBatch(EventBatch.of(LINES)) as CdcEvent[];
  assert.equal(events.length, LINES.length);
  const ops: CdcOp[] = events.map((e) => e.op);
  assert.deepEqual(ops, ['r', 'c', 'u', 'd', 't', 'm', 'begin', 'end']);
  events.forEach((event, i) => {
    const { op, ...rest } = event;
    void op;
    assert.deepEqual(rest, JSON.parse(LINES[i]?.line ?? ''));
  });
  assert.deepEqual(parseBatch(EventBatch.of([])), []);
  const [one] = parseBatch(EventBatch.of(LINES.slice(1, 2))) as CdcEvent[];
  assert.equal(one?.op, 'c');
});

interface Order {
  id: number;
  total: string;
  note: string | null;
}

/** Compile-time checks of the union: never called, only typechecked. */
export function typedUnionNarrowsByOp(event: CdcEvent<Order>): string {
  switch (event.op) {
    case 'c':
    case 'r': {
      const total: string = event.value.after.total;
      // @ts-expect-error: a create has no old row
      const before: Order = event.value.before;
      void before;
      return total;
    }
    case 'u': {
      const id: number = event.value.after.id;
      // @ts-expect-error: `before` is present under REPLICA IDENTITY FULL only
      const old: number = event.value.before.id;
      void old;
      return String(id);
    }
    case 'd': {
      // Under DEFAULT the columns other than the key are null.
      const total: string | null | undefined = event.value.before?.total;
      // @ts-expect-error: a delete has no new row
      const after: Order = event.value.after;
      void after;
      return total ?? '';
    }
    case 't':
      // @ts-expect-error: a truncate has no key
      void event.key.id;
      return event.value.source.table;
    case 'm':
      return event.value.message.content;
    case 'begin':
    case 'end':
      return event.value.id;
    case 'schema':
      return event.value.table.columns.map((c) => c.name).join();
    default: {
      const never: never = event;
      return never;
    }
  }
}

/** A handler's signature: the raw one gets bytes, the parsed one events. */
export function handlerTypes(): void {
  // @ts-expect-error: `op` values are closed
  const op: CdcOp = 'x';
  void op;
}

/** `capture`'s overloads: never called, only typechecked. */
export function captureTypes(): void {
  capture<Order>({
    slot: 'orders_slot',
    tables: ['public.orders'],
    handler: (events) => {
      const first = events[0];
      if (first?.op === 'c') void first.value.after.total.toUpperCase();
      return Promise.resolve();
    },
  });
  capture({ raw: true, handler: (batch) => Promise.resolve(void batch.data.subarray(0, batch.end(0))) });
  // @ts-expect-error: a raw handler gets the batch, not parsed events
  capture({ raw: true, handler: (events: readonly CdcEvent[]) => Promise.resolve(void events) });
  // @ts-expect-error: the handler is the sink
  capture({ sink: { kind: 'jsonl' }, handler: () => Promise.resolve() });
  // @ts-expect-error: options are pgcdc's configuration, checked
  capture({ snapshot: { mode: 'sometimes' }, handler: () => Promise.resolve() });
}
