/**
 * json-with-schema: the Kafka Connect schema of every kind of column (it must describe what the
 * column encoder writes), the JsonConverter form of schemas, and whole event lines checked by the
 * conformance checker (test/harness/connect-conformance.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectSchemaFor, type ConnectSchema } from '../../../src/source/connect-schema.ts';
import {
  DEFAULT_VALUE_OPTIONS,
  isPlainStringEncoder,
  jsonEncoderFor,
  type PgType,
  type ValueOptions,
} from '../../../src/source/values.ts';
import { schemaJson, keySchema, envelopeSchema } from '../../../src/envelope/schemas.ts';
import { TableSerializer, transactionContext, type Op } from '../../../src/envelope/json.ts';
import { messageLine } from '../../../src/envelope/message.ts';
import { beginLine, endLine } from '../../../src/envelope/transaction-events.ts';
import type { TopicNaming } from '../../../src/envelope/topics.ts';
import { TopicRegistry } from '../../../src/sinks/batch.ts';
import { EventBatchBuilder } from '../../../src/sinks/batch-builder.ts';
import { UNCHANGED_TOAST, type TupleData } from '../../../src/protocol/messages.ts';
import type { TableSchema } from '../../../src/source/relations.ts';
import { SchemaChanges } from '../../../src/pipeline/schema-changes.ts';
import { checkLine, checkValue, unwrapLine } from '../../harness/connect-conformance.ts';
import { parseJsonLossless } from '../../fixtures/all-types.ts';

const TYPES: PgType[] = [
  { oid: 90001, name: 'price', schema: 'public', kind: 'd', elemOid: 0, baseOid: 1700, delimiter: ',' },
  { oid: 90002, name: 'mood', schema: 'public', kind: 'e', elemOid: 0, baseOid: 0, delimiter: ',' },
  { oid: 90003, name: '_mood', schema: 'public', kind: 'b', elemOid: 90002, baseOid: 0, delimiter: ',' },
  { oid: 90004, name: 'hstore', schema: 'public', kind: 'b', elemOid: 0, baseOid: 0, delimiter: ',' },
  { oid: 90005, name: 'pair', schema: 'public', kind: 'c', elemOid: 0, baseOid: 0, delimiter: ',' },
  { oid: 90006, name: 'ltree', schema: 'public', kind: 'b', elemOid: 0, baseOid: 0, delimiter: ',' },
];
const lookup = (oid: number): PgType | undefined => TYPES.find((t) => t.oid === oid);
const withSchemaOptions: ValueOptions = { ...DEFAULT_VALUE_OPTIONS, json: 'string' };

/** `type[/name][<items>]`: a compact form of a schema. */
function brief(schema: ConnectSchema): string {
  const name = schema.name === undefined ? '' : `/${schema.name.replace(/^io\.debezium\./, '')}`;
  const inner =
    schema.items !== undefined
      ? `<${brief(schema.items)}>`
      : schema.values !== undefined && schema.keys !== undefined
        ? `<${brief(schema.keys)},${brief(schema.values)}>`
        : '';
  return `${schema.type}${name}${inner}`;
}

test('each built-in type gets the schema of what pgcdc writes for it', () => {
  const cases: [string, number, string][] = [
    ['bool', 16, 'boolean'],
    ['int2', 21, 'int16'],
    ['int4', 23, 'int32'],
    ['int8', 20, 'int64'],
    ['oid', 26, 'int64'],
    ['xid8', 5069, 'int64'],
    ['float4', 700, 'float'],
    ['float8', 701, 'double'],
    ['numeric', 1700, 'string'],
    ['money', 790, 'string'],
    ['json', 114, 'string/data.Json'],
    ['jsonb', 3802, 'string/data.Json'],
    ['bytea', 17, 'bytes'],
    ['text', 25, 'string'],
    ['varchar', 1043, 'string'],
    ['date', 1082, 'string'],
    ['time', 1083, 'string'],
    ['timetz', 1266, 'string/time.ZonedTime'],
    ['timestamp', 1114, 'string'],
    ['timestamptz', 1184, 'string/time.ZonedTimestamp'],
    ['interval', 1186, 'string/time.Interval'],
    ['uuid', 2950, 'string/data.Uuid'],
    ['xml', 142, 'string/data.Xml'],
    ['tsvector', 3614, 'string/data.Tsvector'],
    ['bit', 1560, 'string'],
    ['inet', 869, 'string'],
    ['point', 600, 'string'],
    ['int4range', 3904, 'string'],
    ['int4[]', 1007, 'array<int32>'],
    ['text[]', 1009, 'array<string>'],
    ['numeric[]', 1231, 'array<string>'],
    ['bytea[]', 1001, 'array<bytes>'],
    ['timestamptz[]', 1185, 'array<string/time.ZonedTimestamp>'],
    ['jsonb[]', 3807, 'array<string/data.Json>'],
    ['price (domain over numeric)', 90001, 'string'],
    ['mood (enum)', 90002, 'string'],
    ['mood[]', 90003, 'array<string>'],
    ['hstore', 90004, 'map<string,string>'],
    ['pair (composite)', 90005, 'string'],
    ['ltree', 90006, 'string/data.Ltree'],
    ['an OID nobody knows', 424242, 'string'],
  ];
  for (const [what, oid, expected] of cases)
    assert.equal(brief(connectSchemaFor(oid, lookup, withSchemaOptions)), expected, what);
  // Every column schema is optional (SQL NULL), and so are array elements and map values.
  assert.equal(connectSchemaFor(1007, lookup, withSchemaOptions).items?.optional, true);
  assert.equal(connectSchemaFor(90004, lookup, withSchemaOptions).keys?.optional, false);
});

test('the value options change the schema with the JSON they make', () => {
  const numbers: ValueOptions = { numeric: 'number', json: 'string', bytea: 'hex' };
  assert.equal(brief(connectSchemaFor(1700, lookup, numbers)), 'double');
  assert.equal(brief(connectSchemaFor(790, lookup, numbers)), 'double');
  assert.equal(brief(connectSchemaFor(17, lookup, numbers)), 'string', 'hex is not Connect bytes');
  assert.equal(brief(connectSchemaFor(17, lookup, { ...numbers, bytea: 'base64url' })), 'string');
  assert.equal(brief(connectSchemaFor(114, lookup, DEFAULT_VALUE_OPTIONS)), 'string', 'never named Json as a value');
});

test('the schema of every column accepts what the encoder writes for it, NULL included', () => {
  const samples: [number, string][] = [
    [16, 't'],
    [21, '-32768'],
    [23, '2147483647'],
    [20, '-9223372036854775808'],
    [26, '4294967295'],
    [700, '1.1'],
    [701, 'NaN'],
    [701, '-Infinity'],
    [1700, '123.4500'],
    [790, '-$1,234.50'],
    [114, '{"a" :\n 1}'],
    [3802, '{"a": 1}'],
    [17, '\\x0a0bff'],
    [1184, '2026-11-21 10:00:00.123456+00'],
    [1184, '0044-03-15 10:00:00+00 BC'],
    [1266, '23:59:59-08'],
    [1186, 'P-1Y-2M3DT-4H-5M-6.5S'],
    [2950, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'],
    [1007, '{1,NULL,3}'],
    [1231, '{1.50,NaN}'],
    [1001, '{"\\\\x0a"}'],
    [3807, '{"{\\"a\\": 1}",NULL}'],
    [90001, '12.50'],
  ];
  for (const [oid, text] of samples) {
    const json = jsonEncoderFor(oid, lookup, withSchemaOptions)(text);
    const schema = JSON.parse(schemaJson(connectSchemaFor(oid, lookup, withSchemaOptions))) as Parameters<
      typeof checkValue
    >[0];
    assert.deepEqual(checkValue(schema, parseJsonLossless(json), 'v'), [], `${oid} ${text} -> ${json}`);
    assert.deepEqual(checkValue(schema, null, 'v'), []);
  }
});

test('schemas are written in JsonConverter form', () => {
  assert.equal(
    schemaJson({
      type: 'struct',
      optional: false,
      name: 't.Key',
      fields: [
        { field: 'id', schema: { type: 'int32', optional: false } },
        { field: 'tags', schema: { type: 'array', optional: true, items: { type: 'string', optional: true } } },
        { field: 'j', schema: { type: 'string', optional: true, name: 'io.debezium.data.Json', version: 1 } },
      ],
    }),
    '{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},' +
      '{"type":"array","items":{"type":"string","optional":true},"optional":true,"field":"tags"},' +
      '{"type":"string","optional":true,"name":"io.debezium.data.Json","version":1,"field":"j"}],' +
      '"optional":false,"name":"t.Key"}',
  );
});

const naming: TopicNaming = {
  prefix: 'shop',
  database: 'shopdb',
  naming: 'prefix',
  envelope: { format: 'json-with-schema', unavailableValue: '__debezium_unavailable_value' },
};
const plain: TopicNaming = { ...naming, envelope: { format: 'json', unavailableValue: '__pgcdc_unavailable_value' } };

function table(columns: [string, number][], keyIndexes: number[]): TableSchema {
  return {
    relationId: 1,
    schema: 'public',
    table: 'orders',
    replicaIdentity: 'd',
    columns: columns.map(([name, oid]) => {
      const encode = jsonEncoderFor(oid, lookup, withSchemaOptions);
      const valueSchema = connectSchemaFor(oid, lookup, withSchemaOptions);
      return { name, typeOid: oid, typeMod: -1, encode, plainString: isPlainStringEncoder(encode), valueSchema };
    }),
    keyIndexes,
  };
}

const orders = table(
  [
    ['id', 23],
    ['note', 25],
    ['total', 1700],
    ['blob', 17],
    ['tags', 1009],
    ['ids', 1007],
    ['attrs', 90004],
    ['doc', 3802],
  ],
  [0],
);

function line(
  names: TopicNaming,
  op: Op,
  key: TupleData | null,
  before: TupleData | null,
  after: TupleData | null,
): string {
  const topics = new TopicRegistry();
  const s = new TableSerializer(orders, names, topics);
  const tx = transactionContext(7712, '0/1A2B3C8', 1763719200123, 1763719200123456, 27409000);
  const b = new EventBatchBuilder(topics, 16, 1);
  b.startEvent();
  s.write(b, op, key, before, after, tx, s.inTransaction(tx), 27409352, 1, 1763719200125);
  b.endEvent(s.topicNumber);
  return b.take(1).line(0);
}

test('a change event is {"schema","payload"} twice, the payload is the json format event, and it conforms', () => {
  const row: TupleData = ['42', 'n', '19.90', '\\x0a', '{a,NULL}', '{1,2}', '"a"=>"1"', '{"x": [1]}'];
  const cases: [Op, TupleData | null, TupleData | null, TupleData | null][] = [
    ['c', row, null, row],
    ['u', row, row, row],
    ['d', row, ['42', null, null, null, null, null, null, null], null],
    ['t', null, null, null],
  ];
  for (const [op, key, before, after] of cases) {
    const text = line(naming, op, key, before, after);
    assert.deepEqual(checkLine(text), [], `${op}: ${text}`);
    const event = JSON.parse(text) as { key: { schema: { name: string } } | null; value: { schema: { name: string } } };
    if (op !== 't') assert.equal(event.key?.schema.name, 'shop.public.orders.Key');
    assert.equal(event.value.schema.name, 'shop.public.orders.Envelope');
    assert.deepEqual(JSON.parse(unwrapLine(text)), JSON.parse(line(plain, op, key, before, after)));
  }
  const c = JSON.parse(line(naming, 'c', row, null, row)) as {
    value: { payload: { source: Record<string, unknown>; ts_us: number } };
  };
  assert.equal(c.value.payload.source.sequence, '["27409000","27409352"]');
  assert.equal(c.value.payload.source.ts_us, 1763719200123456);
  assert.equal(c.value.payload.source.xmin, null);
  assert.equal(c.value.payload.ts_us, 1763719200125000);
  const [keyFields] = [keySchema('shop.public.orders', orders).fields ?? []];
  assert.deepEqual(
    keyFields.map((f) => [f.field, f.schema.optional]),
    [['id', false]],
  );
  const rowFields = envelopeSchema('shop.public.orders', orders).fields?.[0]?.schema.fields ?? [];
  assert.deepEqual(
    rowFields.map((f) => f.schema.optional),
    [false, true, true, true, true, true, true, true],
  );
});

test('an unchanged TOAST value is the placeholder in its column type, and still conforms', () => {
  const row: TupleData = ['1', ...Array<typeof UNCHANGED_TOAST>(7).fill(UNCHANGED_TOAST)];
  const text = line(naming, 'u', row, null, row);
  assert.deepEqual(checkLine(text), []);
  const after = (JSON.parse(text) as { value: { payload: { after: Record<string, unknown> } } }).value.payload.after;
  const p = '__debezium_unavailable_value';
  assert.deepEqual(after, {
    id: 1,
    note: p,
    total: p,
    blob: Buffer.from(p).toString('base64'),
    tags: [p],
    ids: null,
    attrs: { [p]: p },
    doc: p,
  });
  const json = JSON.parse(line(plain, 'u', row, null, row)) as { value: { after: Record<string, unknown> } };
  assert.equal(json.value.after.ids, '__pgcdc_unavailable_value', 'json keeps one string for every type');
});

test('a primary-key change writes headers between key and value, naming the other key', () => {
  const topics = new TopicRegistry();
  for (const names of [plain, naming]) {
    const s = new TableSerializer(orders, names, topics);
    const tx = transactionContext(7712, '0/1A2B3C8', 1763719200123);
    const inTx = s.inTransaction(tx);
    const b = new EventBatchBuilder(topics, 16, 1);
    const old: TupleData = ['1', null, null, null, null, null, null, null];
    const row: TupleData = ['2', 'n', '1', null, null, null, null, null];
    b.startEvent();
    s.writeKeyChange(b, 'd', old, row, tx, inTx, 100, 1, 5);
    b.endEvent(s.topicNumber);
    b.startEvent();
    s.writeKeyChange(b, 'c', old, row, tx, inTx, 100, 2, 5);
    b.endEvent(s.topicNumber);
    const batch = b.take(2);
    const [d, c] = [batch.line(0), batch.line(1)];
    assert.deepEqual([batch.id(0), batch.id(1)], ['0/1A2B3C8:0', '0/1A2B3C8:1']);
    for (const text of [d, c]) {
      assert.deepEqual(Object.keys(JSON.parse(text) as object), ['id', 'topic', 'key', 'headers', 'value']);
      if (names === naming) assert.deepEqual(checkLine(text), []);
    }
    const unwrapped = [d, c].map(
      (text) =>
        JSON.parse(unwrapLine(text)) as {
          key: unknown;
          headers: unknown;
          value: { op: string; before: unknown; after: unknown };
        },
    );
    assert.deepEqual(
      unwrapped.map((e) => [e.key, e.headers, e.value.op]),
      [
        [{ id: 1 }, { '__debezium.newkey': { id: 2 } }, 'd'],
        [{ id: 2 }, { '__debezium.oldkey': { id: 1 } }, 'c'],
      ],
    );
    assert.equal((unwrapped[0]?.value.before as { id: number }).id, 1);
    assert.equal(unwrapped[1]?.value.before, null);
  }
});

test('messages and transaction events carry Debezium schemas and conform', () => {
  const tx = transactionContext(7712, '0/1A2B3C8', 1763719200123);
  const message = { prefix: 'audit', content: Buffer.from('hi'), lsn: 500 };
  for (const text of [
    messageLine(naming, message, { context: tx, totalOrder: 1 }, '0/1F4', 5),
    messageLine(naming, message, undefined, '0/1F4', 5, 400),
    beginLine(naming, tx),
    endLine(naming, tx, 3, [{ name: 'public.orders', count: 3 }]),
  ]) {
    assert.deepEqual(checkLine(text), [], text);
    const plainText = JSON.parse(unwrapLine(text)) as { value: { source?: { sequence: string } } };
    assert.ok(plainText.value !== undefined);
  }
  const standalone = JSON.parse(unwrapLine(messageLine(naming, message, undefined, '0/1F4', 5, 400))) as {
    value: { source: { sequence: string } };
  };
  assert.equal(standalone.value.source.sequence, '["400","500"]');
});

test('schema-change events carry a schema of their own and conform', () => {
  const changes = new SchemaChanges(naming, undefined);
  const context = { commitLsn: '0/1A2B3C8', xid: 7712, skip: false };
  const created = changes.applied(orders, context, 5);
  const altered = changes.applied({ ...orders, columns: orders.columns.slice(0, 2) }, context, 6);
  for (const text of [created, altered]) {
    assert.ok(text !== undefined);
    assert.deepEqual(checkLine(text), [], text);
  }
  const plainLine = new SchemaChanges(plain, undefined).applied(orders, context, 5);
  assert.deepEqual(JSON.parse(unwrapLine(created ?? '')), JSON.parse(plainLine ?? ''));
});
