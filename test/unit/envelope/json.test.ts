import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TableSerializer, transactionContext, type Op } from '../../../src/envelope/json.ts';
import { TopicRegistry } from '../../../src/sinks/batch.ts';
import { EventBatchBuilder } from '../../../src/sinks/batch-builder.ts';
import { UNCHANGED_TOAST, type TupleData } from '../../../src/protocol/messages.ts';
import { DEFAULT_VALUE_OPTIONS, isPlainStringEncoder, jsonEncoderFor } from '../../../src/source/values.ts';
import type { TableSchema } from '../../../src/source/relations.ts';

const naming = { prefix: 'shop', database: 'shopdb', naming: 'prefix' as const };

function table(columns: [string, number][], keyIndexes: number[]): TableSchema {
  return {
    relationId: 1,
    schema: 'public',
    table: 'orders',
    replicaIdentity: 'd',
    columns: columns.map(([name, oid]) => {
      const encode = jsonEncoderFor(oid, () => undefined, DEFAULT_VALUE_OPTIONS);
      return { name, typeOid: oid, typeMod: -1, encode, plainString: isPlainStringEncoder(encode) };
    }),
    keyIndexes,
  };
}

interface Parsed {
  id: string;
  topic: string;
  key: unknown;
  value: {
    before: unknown;
    after: unknown;
    op: string;
    ts_ms: number;
    source: Record<string, unknown>;
    transaction: Record<string, unknown>;
  };
}

function serialize(
  t: TableSchema,
  op: Op,
  key: TupleData | null,
  before: TupleData | null,
  after: TupleData | null,
): Parsed {
  return JSON.parse(serializeLine(t, op, key, before, after)) as Parsed;
}

function serializeLine(
  t: TableSchema,
  op: Op,
  key: TupleData | null,
  before: TupleData | null,
  after: TupleData | null,
): string {
  const topics = new TopicRegistry();
  const s = new TableSerializer(t, naming, topics);
  const tx = transactionContext(7712, '0/1A2B3C8', 1763719200123);
  const inTx = s.inTransaction(tx);
  inTx.count = 2;
  const b = new EventBatchBuilder(topics, 16, 1);
  b.startEvent();
  s.write(b, op, key, before, after, tx, inTx, 27409352, 3, 1763719200125);
  b.endEvent(s.topicNumber);
  const batch = b.take(1);
  assert.equal(batch.topic(0), 'shop.public.orders');
  assert.equal(batch.id(0), '0/1A2B3C8:2');
  return batch.line(0);
}

const orders = table(
  [
    ['id', 23],
    ['note', 25],
    ['total', 1700],
  ],
  [0],
);

test('every op writes the documented envelope', () => {
  const row: TupleData = ['42', 'gift "wrap" ☕\n', '19.90'];
  const c = serialize(orders, 'c', row, null, row);
  assert.deepEqual(c, {
    id: '0/1A2B3C8:2',
    topic: 'shop.public.orders',
    key: { id: 42 },
    value: {
      before: null,
      after: { id: 42, note: 'gift "wrap" ☕\n', total: '19.90' },
      source: {
        version: '0.1.0',
        connector: 'postgresql',
        name: 'shop',
        db: 'shopdb',
        schema: 'public',
        table: 'orders',
        snapshot: 'false',
        txId: 7712,
        lsn: 27409352,
        sequence: '[null,"27409352"]',
        commit_lsn: '0/1A2B3C8',
        ts_ms: 1763719200123,
        ts_us: 1763719200123000,
        ts_ns: 1763719200123000000,
        xmin: null,
      },
      op: 'c',
      ts_ms: 1763719200125,
      ts_us: 1763719200125000,
      ts_ns: 1763719200125000000,
      transaction: { id: '7712:0/1A2B3C8', total_order: 3, data_collection_order: 2 },
    },
  });
  const u = serialize(orders, 'u', row, ['42', 'old', '1'], row);
  assert.deepEqual(u.value.before, { id: 42, note: 'old', total: '1' });
  assert.equal(u.value.op, 'u');
  const d = serialize(orders, 'd', ['42', null, null], ['42', null, null], null);
  assert.deepEqual([d.key, d.value.before, d.value.after], [{ id: 42 }, { id: 42, note: null, total: null }, null]);
  const t = serialize(orders, 't', null, null, null);
  assert.deepEqual([t.key, t.value.before, t.value.after, t.value.op], [null, null, null, 't']);
});

test('keyless and zero-column tables, TOAST placeholders, composite keys', () => {
  const keyless = table([['a', 23]], []);
  assert.equal(serialize(keyless, 'c', ['1'], null, ['1']).key, null);
  const empty = table([], []);
  assert.deepEqual(serialize(empty, 'c', [], null, []).value.after, {});
  const toast = serialize(orders, 'u', ['1', UNCHANGED_TOAST, '2'], null, ['1', UNCHANGED_TOAST, '2']);
  assert.deepEqual(toast.value.after, { id: 1, note: '__pgcdc_unavailable_value', total: '2' });
  const composite = table(
    [
      ['order_id', 20],
      ['line_no', 21],
      ['qty', 23],
    ],
    [0, 1],
  );
  // int8 keeps every digit: 2^53 + 1 would not survive a double.
  const line = serializeLine(composite, 'c', ['9007199254740993', '2', '5'], null, ['9007199254740993', '2', '5']);
  assert.match(line, /"key":\{"order_id":9007199254740993,"line_no":2\}/);
});

test('a batch gathers interleaved topics in order and keeps an open transaction for the next batch', () => {
  const registry = new TopicRegistry();
  const b = new EventBatchBuilder(registry, 8, 1);
  const a = registry.number('a');
  const z = registry.number('z');
  b.add(a, '{"id":"0/1:0","v":"é"}');
  b.add(z, '{"id":"0/1:1"}');
  b.add(a, '{"id":"0/1:2"}');
  b.add(a, '{"id":"0/2:0"}');
  const first = b.take(3);
  assert.equal(first.count, 3);
  assert.deepEqual(
    [0, 1, 2].map((i) => first.id(i)),
    ['0/1:0', '0/1:1', '0/1:2'],
  );
  const byTopic = first.byTopic();
  assert.equal(byTopic.get(a)?.toString(), '{"id":"0/1:0","v":"é"}\n{"id":"0/1:2"}\n');
  assert.equal(byTopic.get(z)?.toString(), '{"id":"0/1:1"}\n');
  assert.equal(b.count, 1);
  b.add(z, '{"id":"0/2:1"}');
  const second = b.take(2);
  assert.equal(second.data.toString(), '{"id":"0/2:0"}\n{"id":"0/2:1"}\n');
  assert.equal(second.topic(0), 'a');
  assert.equal(b.count, 0);
  assert.equal(b.bytes, 0);
});

test('strings are escaped exactly as JSON.stringify does, whatever they hold', () => {
  const text = table(
    [
      ['id', 23],
      ['s', 25],
    ],
    [0],
  );
  const samples = [
    'plain',
    '',
    'q"uote',
    'back\\slash',
    'tab\tnew\nline',
    '\u0001\u001f\u007f',
    'é☕😀',
    'x'.repeat(200),
    '\ud800 lone',
    '</script>',
  ];
  for (const sample of samples) {
    const line = serializeLine(text, 'c', ['1', sample], null, ['1', sample]);
    assert.ok(line.includes(`"s":${JSON.stringify(sample)}}`), sample);
    assert.equal(
      (JSON.parse(line) as Parsed).value.after && ((JSON.parse(line) as Parsed).value.after as { s: string }).s,
      sample,
    );
  }
});
