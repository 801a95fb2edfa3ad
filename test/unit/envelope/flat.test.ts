/** `envelope.type: flat` on the serializer's output: every op, deletes rewritten or as tombstones, json-with-schema. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UNCHANGED_TOAST, type TupleData } from '../../../src/protocol/messages.ts';
import { checkLine } from '../../harness/connect-conformance.ts';
import {
  COMMIT_MS,
  LSN,
  namingFor,
  serializer,
  table,
  writeChange,
  writeKeyChange,
  writeRead,
} from './shaping-helpers.ts';

const orders = table(
  'public.orders',
  [
    ['id', 23],
    ['note', 25],
    ['total', 1700],
  ],
  [0],
);
const meta = (op: string, deleted = false, ms = COMMIT_MS) => ({
  __op: op,
  __deleted: deleted,
  __table: 'public.orders',
  __lsn: LSN,
  __ts_ms: ms,
});

test('flat: the row after the change plus __op, __deleted, __table, __lsn, __ts_ms', () => {
  const s = serializer(orders, namingFor({ envelope: { type: 'flat' } }));
  const row: TupleData = ['42', 'gift "wrap" ☕\n', '19.90'];
  const c = writeChange(s, 'c', row, null, row).event;
  assert.deepEqual(c, {
    id: '0/1A2B3C8:0',
    topic: 'shop.public.orders',
    key: { id: 42 },
    value: { id: 42, note: 'gift "wrap" ☕\n', total: '19.90', ...meta('c') },
  });
  const u = writeChange(s, 'u', row, ['42', 'old', '1'], row).event;
  assert.deepEqual(u.value, { id: 42, note: 'gift "wrap" ☕\n', total: '19.90', ...meta('u') });
  // A delete under REPLICA IDENTITY DEFAULT: the old key, the other columns null.
  const d = writeChange(s, 'd', ['42', null, null], ['42', null, null], null).event;
  assert.deepEqual(d, {
    id: '0/1A2B3C8:0',
    topic: 'shop.public.orders',
    key: { id: 42 },
    value: { id: 42, note: null, total: null, ...meta('d', true) },
  });
  // A truncate: no key, no row fields, only the metadata.
  const t = writeChange(s, 't', null, null, null).event;
  assert.deepEqual(t, { id: '0/1A2B3C8:0', topic: 'shop.public.orders', key: null, value: meta('t') });
  // A snapshot read: __ts_ms is when it was read.
  const r = writeRead(s, row).event;
  assert.deepEqual(r, {
    id: '0/1000:r:0:5',
    topic: 'shop.public.orders',
    key: { id: 42 },
    value: { id: 42, note: 'gift "wrap" ☕\n', total: '19.90', ...meta('r', false, COMMIT_MS + 9) },
  });
  // An unchanged TOAST value keeps its placeholder in the row.
  const toast = writeChange(s, 'u', ['42', UNCHANGED_TOAST, '1'], null, ['42', UNCHANGED_TOAST, '1']).event;
  assert.equal(toast.value?.note, '__pgcdc_unavailable_value');
});

test('flat with deletes: tombstone writes a null value, and key changes keep their headers', () => {
  const s = serializer(orders, namingFor({ envelope: { type: 'flat', deletes: 'tombstone' } }));
  const d = writeChange(s, 'd', ['42', null, null], ['42', null, null], null);
  assert.equal(d.line, '{"id":"0/1A2B3C8:0","topic":"shop.public.orders","key":{"id":42},"value":null}');
  const [del, create] = writeKeyChange(s, ['2', 'a', '1'], ['20', 'a', '1']);
  assert.deepEqual(del.event, {
    id: '0/1A2B3C8:0',
    topic: 'shop.public.orders',
    key: { id: 2 },
    headers: { '__debezium.newkey': { id: 20 } },
    value: null,
  });
  assert.deepEqual(create.event.headers, { '__debezium.oldkey': { id: 2 } });
  assert.deepEqual(create.event.value, { id: 20, note: 'a', total: '1', ...meta('c') });
  // rewrite (the default): the delete of the old key carries the old row.
  const rewrite = serializer(orders, namingFor({ envelope: { type: 'flat' } }));
  const [oldRow] = writeKeyChange(rewrite, ['2', 'a', '1'], ['20', 'a', '1']);
  assert.deepEqual(oldRow.event.value, { id: 2, note: 'a', total: '1', ...meta('d', true) });
});

test('flat: a table without a key, and a row whose columns are all excluded', () => {
  const keyless = table('public.log', [['line', 25]], []);
  const s = serializer(keyless, namingFor({ envelope: { type: 'flat' } }));
  const c = writeChange(s, 'c', null, null, ['hello']).event;
  assert.deepEqual(c.key, null);
  assert.deepEqual(c.value, { line: 'hello', ...meta('c'), __table: 'public.log' });
  const empty = serializer(
    orders,
    namingFor({ envelope: { type: 'flat' }, shaping: { rules: [{ tables: ['public.orders'], include: ['id'] }] } }),
  );
  const emptyRow = serializer(
    table('public.orders', [['note', 25]], []),
    namingFor({ envelope: { type: 'flat' }, shaping: { rules: [{ tables: ['public.orders'], exclude: ['note'] }] } }),
  );
  assert.deepEqual(writeChange(empty, 'c', ['1', 'x', '2'], null, ['1', 'x', '2']).event.value, {
    id: 1,
    ...meta('c'),
  });
  assert.deepEqual(writeChange(emptyRow, 'c', null, null, ['x']).event.value, meta('c'));
});

test('flat with json-with-schema: the value is the flat row under <topic>.Value, and every line conforms', () => {
  const s = serializer(orders, namingFor({ envelope: { type: 'flat', format: 'json-with-schema' } }));
  const row: TupleData = ['42', 'n', '19.90'];
  const lines = [
    writeChange(s, 'c', row, null, row).line,
    writeChange(s, 'd', ['42', null, null], ['42', null, null], null).line,
    writeChange(s, 't', null, null, null).line,
    writeRead(s, row).line,
  ];
  for (const line of lines) assert.deepEqual(checkLine(line), [], line);
  const c = JSON.parse(lines[0] as string) as {
    key: { schema: { name: string }; payload: unknown };
    value: { schema: { name: string; fields: { field: string; optional: boolean }[] }; payload: unknown };
  };
  assert.equal(c.key.schema.name, 'shop.public.orders.Key');
  assert.equal(c.value.schema.name, 'shop.public.orders.Value');
  assert.deepEqual(
    c.value.schema.fields.map((f) => `${f.field}${f.optional ? '?' : ''}`),
    ['id?', 'note?', 'total?', '__op', '__deleted', '__table', '__lsn', '__ts_ms'],
  );
  assert.deepEqual(c.value.payload, { id: 42, note: 'n', total: '19.90', ...meta('c') });
  const tombstone = serializer(
    orders,
    namingFor({ envelope: { type: 'flat', format: 'json-with-schema', deletes: 'tombstone' } }),
  );
  const d = writeChange(tombstone, 'd', ['42', null, null], ['42', null, null], null).event as { value: unknown };
  assert.equal(d.value, null, 'a tombstone has no schema wrapper');
});
