/**
 * `values.style: debezium`: the types Debezium's defaults write differently, each value as Debezium
 * writes it and with the schema it declares; every value conforms to its schema.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectSchemaFor } from '../../../src/source/connect-schema.ts';
import { jsonEncoderFor, type PgType, type ValueOptions } from '../../../src/source/values.ts';
import { twosComplementBase64 } from '../../../src/source/debezium-values.ts';
import { schemaJson } from '../../../src/envelope/schemas.ts';
import { checkValue, type ConnectSchemaJson } from '../../harness/connect-conformance.ts';
import { parseJsonLossless } from '../../fixtures/all-types.ts';

const HSTORE: PgType = {
  oid: 90004,
  name: 'hstore',
  schema: 'public',
  kind: 'b',
  elemOid: 0,
  baseOid: 0,
  delimiter: ',',
};
const lookup = (oid: number): PgType | undefined => (oid === HSTORE.oid ? HSTORE : undefined);
const debezium: ValueOptions = { numeric: 'string', json: 'string', bytea: 'base64', style: 'debezium' };
/** numeric(p,s) typmod. */
const numericMod = (precision: number, scale: number): number => ((precision << 16) | scale) + 4;

function encode(oid: number, text: string, typeMod = -1): unknown {
  const json = jsonEncoderFor(oid, lookup, debezium, typeMod)(text);
  const schema = JSON.parse(schemaJson(connectSchemaFor(oid, lookup, debezium, typeMod))) as ConnectSchemaJson;
  assert.deepEqual(checkValue(schema, parseJsonLossless(json), `${oid}`), [], `${oid} ${text} -> ${json}`);
  return JSON.parse(json) as unknown;
}

const schemaOf = (oid: number, typeMod = -1) => connectSchemaFor(oid, lookup, debezium, typeMod);
const days = (y: number, m: number, d: number): number => {
  const date = new Date(0);
  date.setUTCFullYear(y, m - 1, d);
  return date.getTime() / 86_400_000;
};

test("two's complement bytes as Java's BigInteger.toByteArray", () => {
  const hex = (n: bigint): string => Buffer.from(twosComplementBase64(n), 'base64').toString('hex');
  assert.deepEqual([0n, 1n, 127n, 128n, 255n, 256n, -1n, -128n, -129n, 150n, -123450n].map(hex), [
    '00',
    '01',
    '7f',
    '0080',
    '00ff',
    '0100',
    'ff',
    '80',
    'ff7f',
    '0096',
    'fe1dc6',
  ]);
});

test('numeric: Decimal bytes at the column scale, VariableScaleDecimal without a typmod; NaN is null', () => {
  const fixed = schemaOf(1700, numericMod(10, 2));
  assert.deepEqual(
    [fixed.type, fixed.name, fixed.parameters],
    ['bytes', 'org.apache.kafka.connect.data.Decimal', { scale: '2', 'connect.decimal.precision': '10' }],
  );
  assert.equal(encode(1700, '1.50', numericMod(10, 2)), twosComplementBase64(150n));
  assert.equal(encode(1700, '-0.05', numericMod(10, 2)), twosComplementBase64(-5n));
  assert.equal(encode(1700, 'NaN', numericMod(10, 2)), null);
  assert.equal(schemaOf(1700).name, 'io.debezium.data.VariableScaleDecimal');
  assert.deepEqual(encode(1700, '123.4500'), { scale: 2, value: twosComplementBase64(12345n) });
  assert.deepEqual(encode(1700, '-1.5'), { scale: 1, value: twosComplementBase64(-15n) });
  assert.deepEqual(encode(1700, '100'), { scale: 0, value: twosComplementBase64(100n) });
  assert.deepEqual(encode(1700, '0.000'), { scale: 0, value: twosComplementBase64(0n) });
  assert.equal(encode(1700, 'Infinity'), null);
  assert.deepEqual(encode(1231, '{1.50,NULL}', numericMod(5, 2)), [twosComplementBase64(150n), null]);
  assert.equal(encode(790, '-$1,234.50'), twosComplementBase64(-123450n));
  assert.deepEqual(schemaOf(790).parameters, { scale: '2' });
});

test('dates, times and timestamps as epoch counts with the io.debezium.time names', () => {
  assert.equal(schemaOf(1082).name, 'io.debezium.time.Date');
  assert.equal(encode(1082, '2026-11-21'), days(2026, 11, 21));
  assert.equal(encode(1082, '1969-12-31'), -1);
  assert.equal(encode(1082, '0044-03-15 BC'), days(-43, 3, 15));
  assert.equal(encode(1082, 'infinity'), null);
  assert.equal(schemaOf(1083).name, 'io.debezium.time.MicroTime');
  assert.equal(encode(1083, '10:00:00.123456'), 36_000_123_456);
  assert.equal(encode(1083, '24:00:00'), 86_400_000_000);
  assert.deepEqual([schemaOf(1083, 3).type, schemaOf(1083, 3).name], ['int32', 'io.debezium.time.Time']);
  assert.equal(encode(1083, '10:00:00.123', 3), 36_000_123);
  assert.equal(schemaOf(1114).name, 'io.debezium.time.MicroTimestamp');
  assert.equal(encode(1114, '2026-11-21 10:00:00.123456'), Date.UTC(2026, 10, 21, 10) * 1000 + 123_456);
  assert.equal(encode(1114, '1969-12-31 23:59:59.9995', 3), -1, 'milliseconds round down like Java');
  assert.equal(schemaOf(1114, 0).name, 'io.debezium.time.Timestamp');
  assert.equal(encode(1114, '0044-03-15 10:00:00 BC'), (days(-43, 3, 15) * 86_400 + 36_000) * 1_000_000);
  assert.equal(encode(1114, '-infinity'), null);
});

test('timestamptz and timetz as UTC ISO strings in Java form; interval as MicroDuration', () => {
  assert.equal(encode(1184, '2026-11-21 10:00:00.123456+00'), '2026-11-21T10:00:00.123456Z');
  assert.equal(encode(1184, '10000-01-01 00:00:00+00'), '+10000-01-01T00:00:00Z');
  assert.equal(encode(1184, '0044-03-15 10:00:00+00 BC'), '-0043-03-15T10:00:00Z');
  assert.equal(encode(1184, 'infinity'), null);
  assert.equal(encode(1266, '10:00:00.123+05:30'), '04:30:00.123Z');
  assert.equal(encode(1266, '23:59:59-08'), '07:59:59Z');
  assert.equal(encode(1266, '01:00:00+02'), '23:00:00Z');
  assert.equal(schemaOf(1186).name, 'io.debezium.time.MicroDuration');
  const expected = Math.trunc(((((14 * 365.25) / 12 + 3) * 24 + 4) * 60 + 5) * 60 * 1e6 + 6.5e6);
  assert.equal(encode(1186, 'P1Y2M3DT4H5M6.5S'), expected);
  assert.equal(encode(1186, 'PT0S'), 0);
  assert.equal((encode(1186, 'P-1Y-2M3DT-4H-5M-6.5S') as number) < 0, true);
});

test('json, jsonb, hstore as JSON text in a string (io.debezium.data.Json); other types as pgcdc writes them', () => {
  assert.equal(encode(3802, '{"a": 1}'), '{"a": 1}');
  assert.equal(encode(114, '{"a" :\n 1}'), '{"a" :\n 1}');
  assert.equal(schemaOf(3802).name, 'io.debezium.data.Json');
  assert.equal(encode(90004, '"a"=>"1", "b"=>NULL'), '{"a":"1","b":null}');
  assert.equal(schemaOf(90004).name, 'io.debezium.data.Json');
  assert.equal(encode(17, '\\x0a0bff'), 'Cgv/');
  assert.equal(encode(23, '42'), 42);
  assert.equal(schemaOf(2950).name, 'io.debezium.data.Uuid');
});
