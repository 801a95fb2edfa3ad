import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CdcError } from '../../../src/core/errors.ts';
import { arrayEncoder, encodeHstore } from '../../../src/source/arrays.ts';
import { DEFAULT_VALUE_OPTIONS, jsonEncoderFor } from '../../../src/source/values.ts';

const text = arrayEncoder((t) => JSON.stringify(t), ',', 'text[]');
const int4 = jsonEncoderFor(1007, () => undefined, DEFAULT_VALUE_OPTIONS);
const box = jsonEncoderFor(1020, () => undefined, DEFAULT_VALUE_OPTIONS);
const timestamptz = jsonEncoderFor(1185, () => undefined, DEFAULT_VALUE_OPTIONS);

function rejects(encode: (t: string) => string, input: string, typeName: string): void {
  assert.throws(
    () => encode(input),
    (error: unknown) => error instanceof CdcError && error.code === 'VALUE_INVALID' && error.message.includes(typeName),
    `${JSON.stringify(input)} should be rejected`,
  );
}

test('one dimension, NULLs, quoted elements and escapes', () => {
  assert.equal(int4('{1,2,3}'), '[1,2,3]');
  assert.equal(int4('{}'), '[]');
  assert.equal(int4('{NULL,-5}'), '[null,-5]');
  assert.equal(
    text('{"a\\"b","NULL",NULL,null,"","x y","a,b","a\\\\b","{x}"}'),
    '["a\\"b","NULL",null,null,"","x y","a,b","a\\\\b","{x}"]',
  );
  assert.equal(text('{"tab\there","new\nline"}'), '["tab\\there","new\\nline"]');
  assert.equal(text('{"ünï ✓ 𝄞"}'), '["ünï ✓ 𝄞"]');
});

test('several dimensions nest; explicit bounds are dropped', () => {
  assert.equal(int4('{{1,2},{3,4}}'), '[[1,2],[3,4]]');
  assert.equal(int4('{{{1}},{{2}}}'), '[[[1]],[[2]]]');
  assert.equal(int4('{{NULL,NULL}}'), '[[null,null]]');
  assert.equal(int4('[0:1]={1,2}'), '[1,2]');
  assert.equal(int4('[-2:-1][5:6]={{1,2},{3,4}}'), '[[1,2],[3,4]]');
});

test('elements go through the element encoder', () => {
  assert.equal(timestamptz('{"2026-11-21 10:00:00.5+00",infinity}'), '["2026-11-21T10:00:00.5Z","infinity"]');
  assert.equal(box('{(3,4),(1,2);(7,8),(5,6)}'), '["(3,4),(1,2)","(7,8),(5,6)"]');
  rejects(int4, '{1,x}', 'int4');
});

test('malformed array text is refused', () => {
  for (const bad of [
    '',
    '1,2',
    '{1,2',
    '{1,2}}',
    '{1,,2}',
    '{,}',
    '{1;2}',
    '{"a}',
    '{a"b}',
    '{a\\b}',
    '{1}x',
    '[0:1]{1,2}',
    '[a:b]={1}',
    '[0:1]=1',
    '{{{{{{{1}}}}}}}',
  ]) {
    rejects(int4, bad, 'int4'); // by the array parser ("int4[]") or by the element encoder ("int4")
  }
  // The closure keeps no state from a failed value.
  assert.equal(int4('{7}'), '[7]');
});

/** Prints a list the way array_out does. */
function arrayOut(values: (string | null)[]): string {
  const items = values.map((v) => {
    if (v === null) return 'NULL';
    if (v !== '' && v.toUpperCase() !== 'NULL' && !/[{}",\\\s]/.test(v)) return v;
    return `"${v.replace(/["\\]/g, (c) => `\\${c}`)}"`;
  });
  return `{${items.join(',')}}`;
}

test('property: every text[] printed by array_out comes back as the same list', () => {
  fc.assert(
    fc.property(
      fc.array(fc.option(fc.string({ unit: 'binary', maxLength: 12 }), { nil: null }), { maxLength: 8 }),
      (values) => {
        assert.deepEqual(JSON.parse(text(arrayOut(values))), values);
      },
    ),
    { numRuns: 2_000 },
  );
});

test('hstore', () => {
  assert.equal(encodeHstore(''), '{}');
  assert.equal(encodeHstore('"a"=>"1"'), '{"a":"1"}');
  assert.equal(encodeHstore('"a"=>"1", "b c"=>NULL, "q\\"x"=>"\\\\"'), '{"a":"1","b c":null,"q\\"x":"\\\\"}');
  assert.equal(encodeHstore('"ü"=>"✓\n"'), '{"ü":"✓\\n"}');
  for (const bad of ['a=>1', '"a"=>', '"a"=>"1",', '"a"=>"1","b"=>"2"', '"a"->"1"', '"a"=>NULLX', '"a', '"a"=>"1"x'])
    rejects(encodeHstore, bad, 'hstore');
});

test('property: every hstore printed by hstore_out comes back as the same object', () => {
  const quote = (s: string): string => `"${s.replace(/["\\]/g, (c) => `\\${c}`)}"`;
  fc.assert(
    fc.property(
      fc.dictionary(
        fc.string({ unit: 'binary', maxLength: 8 }),
        fc.option(fc.string({ unit: 'binary', maxLength: 8 }), { nil: null }),
        { maxKeys: 5 },
      ),
      (pairs) => {
        const printed = Object.entries(pairs)
          .map(([k, v]) => `${quote(k)}=>${v === null ? 'NULL' : quote(v)}`)
          .join(', ');
        // Entries, not objects: a "__proto__" key is an own property of both, but with different prototypes.
        assert.deepEqual(Object.entries(JSON.parse(encodeHstore(printed)) as object), Object.entries(pairs));
      },
    ),
    { numRuns: 1_000 },
  );
});
