import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CdcError } from '../../../src/core/errors.ts';
import {
  DEFAULT_VALUE_OPTIONS,
  jsonEncoderFor,
  type PgType,
  type TypeLookup,
  type ValueOptions,
} from '../../../src/source/values.ts';
import { BUILTIN_ARRAY_ELEMENTS, OID } from '../../../src/source/type-oids.ts';

const none: TypeLookup = () => undefined;
const enc = (oid: number, options: Partial<ValueOptions> = {}, lookup: TypeLookup = none) =>
  jsonEncoderFor(oid, lookup, { ...DEFAULT_VALUE_OPTIONS, ...options });

/** Asserts that encoding `text` throws VALUE_INVALID naming `typeName`. */
function rejects(oid: number, text: string, typeName: string, lookup: TypeLookup = none): void {
  assert.throws(
    () => enc(oid, {}, lookup)(text),
    (error: unknown) => error instanceof CdcError && error.code === 'VALUE_INVALID' && error.message.includes(typeName),
    `${typeName} ${JSON.stringify(text)} should be rejected`,
  );
}

function type(oid: number, name: string, kind: PgType['kind'], extra: Partial<PgType> = {}): PgType {
  return { oid, name, schema: 'public', kind, elemOid: 0, baseOid: 0, delimiter: ',', ...extra };
}

/** A catalog of user types for the lookup-driven branches. */
const userTypes = new Map<number, PgType>(
  [
    type(20001, 'price', 'd', { baseOid: OID.numeric }),
    type(20002, 'positive_price', 'd', { baseOid: 20001 }),
    type(20003, 'int_list', 'd', { baseOid: 1007 }),
    type(20004, 'mood', 'e'),
    type(20005, '_mood', 'b', { elemOid: 20004 }),
    type(20006, 'pair', 'c'),
    type(20007, 'floatrange', 'r'),
    type(20008, 'floatmultirange', 'm'),
    type(20009, 'hstore', 'b'),
    type(20010, '_hstore', 'b', { elemOid: 20009 }),
    type(20011, 'citext', 'b'),
    type(20012, '_price', 'b', { elemOid: 20001 }),
    type(20013, 'mybox', 'd', { baseOid: OID.box, delimiter: ';' }),
    type(20014, '_mybox', 'b', { elemOid: 20013, delimiter: ';' }),
    type(20015, 'loop_a', 'd', { baseOid: 20016 }),
    type(20016, 'loop_b', 'd', { baseOid: 20015 }),
    type(20017, '_orphan', 'b', { elemOid: 29999, delimiter: ';' }),
    type(20018, '_int_list', 'b', { elemOid: 20003 }),
    type(20019, 'anyelement_like', 'p'),
  ].map((t) => [t.oid, t]),
);
const lookup: TypeLookup = (oid) => userTypes.get(oid);

describe('scalars', () => {
  test('bool', () => {
    assert.equal(enc(OID.bool)('t'), 'true');
    assert.equal(enc(OID.bool)('f'), 'false');
    for (const bad of ['true', 'T', '', '1']) rejects(OID.bool, bad, 'bool');
  });

  test('integers go out verbatim, int8 and xid8 with every digit', () => {
    assert.equal(enc(OID.int2)('-32768'), '-32768');
    assert.equal(enc(OID.int4)('0'), '0');
    assert.equal(enc(OID.int8)('-9223372036854775808'), '-9223372036854775808');
    assert.equal(enc(OID.int8)('9007199254740993'), '9007199254740993'); // 2^53 + 1: no double rounding
    assert.equal(enc(OID.oid)('4294967295'), '4294967295');
    assert.equal(enc(OID.xid)('12345'), '12345');
    assert.equal(enc(OID.cid)('7'), '7');
    assert.equal(enc(OID.xid8)('18446744073709551615'), '18446744073709551615');
    for (const bad of ['abc', '', '-', '01', '-0x1', '1.5', ' 1', '1e3', '+1']) rejects(OID.int4, bad, 'int4');
    rejects(OID.int2, '1234567', 'int2');
    rejects(OID.int8, '123456789012345678901', 'int8');
    rejects(OID.oid, '-1', 'oid');
    rejects(OID.xid8, '-1', 'xid8');
  });

  test('floats are numbers; NaN and the infinities are strings', () => {
    for (const t of ['1.5', '-0', '1e+308', '1.5e-05', '0.100000000000000006', '3.4028235e+38'])
      assert.equal(enc(OID.float8)(t), t);
    assert.equal(enc(OID.float4)('NaN'), '"NaN"');
    assert.equal(enc(OID.float4)('Infinity'), '"Infinity"');
    assert.equal(enc(OID.float8)('-Infinity'), '"-Infinity"');
    for (const bad of ['', '.5', '1.', '1e', 'inf', 'nan', '- 1', '1,5']) rejects(OID.float8, bad, 'float8');
  });

  test('numeric keeps its exact digits: a string by default, a number literal on request', () => {
    const huge = '123456789012345678901234567890.123456789012345678901234567890';
    assert.equal(enc(OID.numeric)('1.50'), '"1.50"');
    assert.equal(enc(OID.numeric)(huge), `"${huge}"`);
    assert.equal(enc(OID.numeric, { numeric: 'number' })(huge), huge);
    for (const special of ['NaN', 'Infinity', '-Infinity']) {
      assert.equal(enc(OID.numeric)(special), `"${special}"`);
      assert.equal(enc(OID.numeric, { numeric: 'number' })(special), `"${special}"`);
    }
    rejects(OID.numeric, 'abc', 'numeric');
    assert.throws(() => enc(OID.numeric, { numeric: 'number' })('1,5'), CdcError);
  });

  test('money: C-locale text becomes the amount; other locales keep their text', () => {
    assert.equal(enc(OID.money)('$1,234.50'), '"1234.50"');
    assert.equal(enc(OID.money)('-$92,233,720,368,547,758.08'), '"-92233720368547758.08"');
    assert.equal(enc(OID.money)('$0.00'), '"0.00"');
    assert.equal(enc(OID.money, { numeric: 'number' })('-$1,234.50'), '-1234.50');
    assert.equal(enc(OID.money)('1.234,50 €'), '"1.234,50 €"');
    assert.equal(enc(OID.money, { numeric: 'number' })('1.234,50 €'), '"1.234,50 €"');
    assert.equal(enc(OID.money)('$1,23.50'), '"$1,23.50"'); // not a C-locale grouping: kept as text
  });

  test('text-like and unknown types are JSON strings', () => {
    assert.equal(enc(25)('he said "hi"\n\\ \u0001'), '"he said \\"hi\\"\\n\\\\ \\u0001"');
    assert.equal(enc(25)(''), '""');
    assert.equal(enc(2950)('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), '"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"');
    assert.equal(enc(22)('1 2'), '"1 2"'); // int2vector: not array text
    assert.equal(enc(600)('(1,2)'), '"(1,2)"'); // point
    assert.equal(enc(987654)('x'), '"x"'); // an OID nobody knows
  });

  test('json and jsonb are spliced in; json line breaks are squeezed out', () => {
    assert.equal(enc(OID.jsonb)('{"a": [1, 2.50, "x y"]}'), '{"a": [1, 2.50, "x y"]}');
    assert.equal(enc(OID.json)('{\n\t"a" :\r\n 1, "s": "keep  spaces"\n}'), '{"a":1,"s":"keep  spaces"}');
    assert.equal(enc(OID.json)(' 12 '), ' 12 ');
    assert.equal(enc(OID.json, { json: 'string' })('{"a": 1}'), '"{\\"a\\": 1}"');
    assert.equal(enc(OID.jsonb, { json: 'string' })('[1]'), '"[1]"');
    for (const bad of ['', '{', '{"a":}', '[1,]', 'tru', 'NaN', '{"a" 1}', '"\n"', '[1] [2]', "{'a':1}"])
      rejects(OID.json, bad, 'json');
    rejects(OID.jsonb, '{', 'jsonb');
  });

  test('bytea: base64 by default, hex and base64url on request', () => {
    assert.equal(enc(OID.bytea)('\\x0a0bff'), '"Cgv/"');
    assert.equal(enc(OID.bytea)('\\x'), '""');
    assert.equal(enc(OID.bytea, { bytea: 'hex' })('\\x0a0bff'), '"0a0bff"');
    assert.equal(enc(OID.bytea, { bytea: 'base64url' })('\\x0a0bff'), '"Cgv_"');
    for (const bad of ['', '0a0b', '\\x0', '\\x0g', '\\000', '\\xzz', '\\x0a\u01000b'])
      rejects(OID.bytea, bad, 'bytea');
    // Past the reused buffer's initial size, and past the size it may grow to.
    for (const size of [5000, (1 << 20) + 3]) {
      const bytes = Buffer.alloc(size, 0xab);
      assert.equal(enc(OID.bytea)(`\\x${bytes.toString('hex')}`), `"${bytes.toString('base64')}"`);
    }
    assert.equal(enc(OID.bytea)('\\x0102'), '"AQI="'); // the reused buffer holds no stale bytes
  });
});

describe('types found through the lookup', () => {
  test('domains encode as their base type, through chains and over arrays', () => {
    assert.equal(enc(20001, {}, lookup)('12.50'), '"12.50"');
    assert.equal(enc(20002, { numeric: 'number' }, lookup)('12.50'), '12.50');
    assert.equal(enc(20003, {}, lookup)('{1,2}'), '[1,2]');
    rejects(20001, 'x', 'numeric', lookup);
  });

  test('a domain cycle (a broken catalog) degrades to text instead of recursing forever', () => {
    assert.equal(enc(20015, {}, lookup)('1'), '"1"');
  });

  test('enums, composites, ranges, multiranges, pseudo and extension types are strings', () => {
    assert.equal(enc(20004, {}, lookup)('happy'), '"happy"');
    assert.equal(enc(20006, {}, lookup)('(1,"a b")'), '"(1,\\"a b\\")"');
    assert.equal(enc(20007, {}, lookup)('[1.5,2)'), '"[1.5,2)"');
    assert.equal(enc(20008, {}, lookup)('{[1.5,2)}'), '"{[1.5,2)}"');
    assert.equal(enc(20019, {}, lookup)('x'), '"x"');
    assert.equal(enc(20011, {}, lookup)('MiXeD'), '"MiXeD"');
  });

  test('arrays of user types use the element encoder and the element delimiter', () => {
    assert.equal(enc(20005, {}, lookup)('{sad,"it\'s \\"x\\""}'), '["sad","it\'s \\"x\\""]');
    assert.equal(enc(20012, {}, lookup)('{1.50,NULL}'), '["1.50",null]');
    assert.equal(enc(20014, {}, lookup)('{(3,4),(1,2);(7,8),(5,6)}'), '["(3,4),(1,2)","(7,8),(5,6)"]');
    assert.equal(enc(20017, {}, lookup)('{a,b;c}'), '["a,b","c"]'); // unknown element: the array's own delimiter
    assert.equal(enc(20018, {}, lookup)('{"{1,2}","{3}"}'), '[[1,2],[3]]'); // array of a domain over int4[]
    rejects(20012, '{x}', 'numeric', lookup);
  });

  test('hstore is recognised by name, also inside arrays', () => {
    assert.equal(enc(20009, {}, lookup)('"a"=>"1", "b c"=>NULL'), '{"a":"1","b c":null}');
    assert.equal(enc(20010, {}, lookup)('{"\\"a\\"=>\\"1\\"",NULL}'), '[{"a":"1"},null]');
  });

  test('built-ins never depend on the lookup', () => {
    const misleading: TypeLookup = (oid) => type(oid, 'hstore', 'd', { baseOid: OID.bool });
    assert.equal(jsonEncoderFor(OID.int4, misleading, DEFAULT_VALUE_OPTIONS)('5'), '5');
    assert.equal(jsonEncoderFor(1007, misleading, DEFAULT_VALUE_OPTIONS)('{5}'), '[5]');
  });
});

test('DEFAULT_VALUE_OPTIONS', () => {
  assert.deepEqual({ ...DEFAULT_VALUE_OPTIONS }, { numeric: 'string', json: 'value', bytea: 'base64' });
});

test('errors show at most 32 characters of the value and carry a hint', () => {
  const long = 'x'.repeat(100);
  assert.throws(
    () => enc(OID.int4)(long),
    (error: unknown) =>
      error instanceof CdcError &&
      error.message.includes(`${'x'.repeat(32)}...`) &&
      !error.message.includes('x'.repeat(33)) &&
      error.hint !== undefined,
  );
});

// Every encoder pgcdc can pick: each built-in scalar and array with each option, and the lookup branches.
const OPTION_SETS: ValueOptions[] = [
  DEFAULT_VALUE_OPTIONS,
  { numeric: 'number', json: 'string', bytea: 'hex' },
  { numeric: 'number', json: 'value', bytea: 'base64url' },
];
const ENCODERS = OPTION_SETS.flatMap((options) =>
  [...Object.values(OID), ...BUILTIN_ARRAY_ELEMENTS.keys(), 25, ...userTypes.keys()].map((oid) => ({
    oid,
    encode: jsonEncoderFor(oid, lookup, options),
  })),
);

/** Strings over the characters the parsers care about, so they reach deep into each grammar. */
const grammarText = fc.string({
  unit: fc.constantFrom(
    '{',
    '}',
    '[',
    ']',
    '"',
    '\\',
    ',',
    ';',
    ':',
    '=',
    '>',
    ' ',
    '\n',
    '\t',
    'N',
    'U',
    'L',
    'x',
    '0',
    '1',
    '9',
    '-',
    '+',
    '.',
    'e',
    'E',
    'T',
    'P',
    'D',
    'S',
    'B',
    'C',
    'a',
    'f',
    't',
    'u',
    '$',
    '\u0001',
    'é',
    '𝄞',
  ),
  maxLength: 40,
});

test('property: every text gives one line of valid JSON or a VALUE_INVALID CdcError', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...ENCODERS),
      fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), grammarText),
      ({ oid, encode }, text) => {
        let out: string;
        try {
          out = encode(text);
        } catch (error) {
          assert.ok(error instanceof CdcError && error.code === 'VALUE_INVALID', `type ${oid}: ${String(error)}`);
          return;
        }
        assert.doesNotThrow(() => JSON.parse(out), `type ${oid}: ${JSON.stringify(text)} -> ${out}`);
        assert.ok(!/[\n\r]/.test(out), `type ${oid}: output spans lines`);
      },
    ),
    { numRuns: 20_000 },
  );
});
