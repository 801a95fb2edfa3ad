/**
 * The snapshot's fast path (COPY bytes → event bytes, envelope/copy-values.ts) writes exactly what
 * the string path writes (COPY text parsed into a tuple, then serialized) for every value, in the
 * Debezium and flat envelopes, with and without shaping; a value the encoder refuses fails alike.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TableSerializer, readIdHead } from '../../../src/envelope/json.ts';
import type { TopicNaming } from '../../../src/envelope/topics.ts';
import { TopicRegistry } from '../../../src/sinks/batch.ts';
import { EventBatchBuilder } from '../../../src/sinks/batch-builder.ts';
import { escapeCopyText, parseLines, type CopyRow } from '../../../src/snapshot/copy-text.ts';
import { CopyRowCursor } from '../../../src/source/copy-row.ts';
import { OID } from '../../../src/source/type-oids.ts';
import { namingFor, table } from './shaping-helpers.ts';

const TEXT_OID = 25;
const VARCHAR_OID = 1043;

const COLUMNS: [string, number][] = [
  ['id', OID.int8],
  ['small', OID.int2],
  ['n', OID.int4],
  ['o', OID.oid],
  ['flag', OID.bool],
  ['name', TEXT_OID],
  ['code', VARCHAR_OID],
  ['price', OID.numeric],
  ['ratio', OID.float8],
  ['doc', OID.jsonb],
  ['blob', OID.bytea],
];

const digits = fc.stringMatching(/^-?(0|[1-9][0-9]{0,17})$/);
const column: Record<number, fc.Arbitrary<string>> = {
  [OID.int8]: fc.oneof(digits, fc.constantFrom('007', '-', '', '-0', '99999999999999999999999')),
  [OID.int2]: fc.oneof(fc.integer({ min: -32768, max: 32767 }).map(String), fc.constantFrom('1234567', '+1')),
  [OID.int4]: fc.integer({ min: -2147483648, max: 2147483647 }).map(String),
  [OID.oid]: fc.oneof(fc.nat().map(String), fc.constant('-1')),
  [OID.bool]: fc.constantFrom('t', 'f', 'x'),
  [TEXT_OID]: fc.oneof(
    fc.string({ unit: 'binary' }),
    fc.string({ unit: fc.constantFrom('\\', '\n', '\r', '\t', '\b', '\f', '\v', '"', '\u0001', '\u007f', 'é', 'a') }),
  ),
  [VARCHAR_OID]: fc.string({ unit: 'grapheme' }),
  [OID.numeric]: fc.constantFrom('1.50', '-0.001', 'NaN', '12345678901234567890.123'),
  [OID.float8]: fc.constantFrom('1.5', '-0', '1e+100', 'Infinity', 'NaN'),
  [OID.jsonb]: fc.constantFrom('{"a": [1, 2, "x\\ty"]}', '"é"', 'null', '[]'),
  [OID.bytea]: fc.constantFrom('\\x', '\\x00ff10', '\\xdeadbeef'),
};
const row = fc.tuple(
  ...COLUMNS.map(([, oid]) => fc.option(column[oid] as fc.Arbitrary<string>, { nil: null, freq: 8 })),
);

const SCHEMA = table('shop.items', COLUMNS, [0]);

/** One read event per row, through tuples (the string path) or in place (the fast path). */
function lines(rows: readonly CopyRow[], naming: TopicNaming, fast: boolean): string[] {
  const registry = new TopicRegistry();
  const serializer = new TableSerializer(SCHEMA, naming, registry);
  const tail = serializer.readTail('true', 42, '0/2A', 1763719200123);
  const idHead = readIdHead('0/2A:r:0:');
  const text = Buffer.from(rows.map((r) => `${r.map(escapeCopyText).join('\t')}\n`).join(''));
  const out: string[] = [];
  const one = (write: (b: EventBatchBuilder) => void): void => {
    const builder = new EventBatchBuilder(registry, 16);
    try {
      builder.startEvent();
      write(builder);
      builder.endEvent(0);
      out.push(builder.take(1).line(0));
    } catch (error) {
      out.push(`error: ${error instanceof Error ? error.message : String(error)}`);
    }
  };
  if (fast) {
    const cursor = new CopyRowCursor(COLUMNS.length);
    cursor.reset(text);
    for (let i = 0; cursor.next(); i++) one((b) => serializer.writeRead(b, cursor, idHead, i, tail));
  } else {
    const parsed: CopyRow[] = [];
    parseLines(text.toString('utf8'), COLUMNS.length, parsed);
    parsed.forEach((tuple, i) => one((b) => serializer.writeRead(b, tuple, idHead, i, tail)));
  }
  return out;
}

const NAMINGS: Record<string, TopicNaming> = {
  debezium: namingFor({}),
  flat: namingFor({ envelope: { type: 'flat' } }),
  'json-with-schema': namingFor({ envelope: { format: 'json-with-schema' } }),
  shaped: namingFor({
    shaping: {
      salt: { env: 'SALT' },
      rules: [{ tables: ['shop.items'], exclude: ['blob'], mask: { name: 'hash' }, truncate: { code: 3 } }],
    },
  }),
  excluded: namingFor({ shaping: { rules: [{ tables: ['shop.items'], exclude: ['code', 'blob'] }] } }),
};

for (const [name, naming] of Object.entries(NAMINGS)) {
  test(`COPY rows written in place equal the string path's lines: ${name}`, () => {
    fc.assert(
      fc.property(fc.array(row, { minLength: 1, maxLength: 8 }), (rows) => {
        assert.deepEqual(lines(rows, naming, true), lines(rows, naming, false));
      }),
      { numRuns: 400 },
    );
  });
}

test('byte escapes and invalid UTF-8, which COPY TO never writes, take the string path', () => {
  const text = Buffer.concat([
    Buffer.from('1\t\\N\t\\N\t\\N\t\\101\\x42\t'),
    Buffer.from([0xff, 0x41]),
    Buffer.from('\n'),
  ]);
  const cursor = new CopyRowCursor(6);
  cursor.reset(text);
  assert.equal(cursor.next(), true);
  const registry = new TopicRegistry();
  const schema = table(
    'shop.t',
    [
      ['id', OID.int8],
      ['a', OID.int4],
      ['b', OID.int4],
      ['c', OID.int4],
      ['x', TEXT_OID],
      ['y', TEXT_OID],
    ],
    [0],
  );
  const serializer = new TableSerializer(schema, namingFor({}), registry);
  const builder = new EventBatchBuilder(registry, 16);
  builder.startEvent();
  serializer.writeRead(builder, cursor, readIdHead('0/1:r:0:'), 0, serializer.readTail('true', 1, '0/1', 1));
  builder.endEvent(0);
  const event = JSON.parse(builder.take(1).line(0)) as { value: { after: Record<string, unknown> } };
  assert.deepEqual(event.value.after, { id: 1, a: null, b: null, c: null, x: 'AB', y: '\uFFFDA' });
  assert.equal(cursor.next(), false);
});
