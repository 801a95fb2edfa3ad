import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  JSON_INVALID,
  JSON_MULTI_LINE,
  JSON_ONE_LINE,
  checkJson,
  compactJson,
  isJsonInteger,
  scanNumber,
} from '../../../src/source/json-grammar.ts';

function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

test('checkJson accepts JSON and says when it spans lines', () => {
  for (const t of [
    '0',
    '-0.5e+3',
    '"a\\u00e9\\n"',
    'true',
    'false',
    'null',
    '[]',
    '{}',
    '[1,[2,{"a":[]}]]',
    ' {"a" : 1 , "b":[ ]} ',
  ]) {
    assert.equal(checkJson(t), JSON_ONE_LINE, t);
  }
  for (const t of ['{\n"a":1}', '[1,\t2]', '\r\n1', '{"a"\n:1}', '{"a":\n1}', '[1\n]'])
    assert.equal(checkJson(t), JSON_MULTI_LINE, JSON.stringify(t));
  for (const t of [
    '',
    ' ',
    '{',
    '}',
    '[1,]',
    '{"a":1,}',
    '{"a"}',
    '{1:2}',
    '01',
    '1.',
    '.1',
    '-',
    '1e',
    '+1',
    'nul',
    'True',
    '"a',
    '"\\x"',
    '"\\u12"',
    '"\u0001"',
    '[1]]',
    '[1} ',
    '{"a":1]',
    '1 2',
    'NaN',
    '\u00a01',
  ]) {
    assert.equal(checkJson(t), JSON_INVALID, JSON.stringify(t));
  }
});

test('checkJson handles nesting far deeper than its initial stack, without recursion', () => {
  const depth = 100_000;
  assert.equal(checkJson(`${'['.repeat(depth)}${']'.repeat(depth)}`), JSON_ONE_LINE);
  assert.equal(checkJson(`${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`), JSON_ONE_LINE);
  assert.equal(checkJson(`${'['.repeat(depth)}${']'.repeat(depth - 1)}`), JSON_INVALID);
});

test('property: checkJson agrees with JSON.parse on any text', () => {
  const jsonish = fc.string({
    unit: fc.constantFrom(
      '{',
      '}',
      '[',
      ']',
      '"',
      '\\',
      ',',
      ':',
      ' ',
      '\n',
      '\t',
      '0',
      '1',
      '-',
      '+',
      '.',
      'e',
      'E',
      'u',
      'a',
      'f',
      't',
      'r',
      'n',
      'l',
      's',
      '\u0001',
      '𝄞',
    ),
    maxLength: 30,
  });
  const nearJson = fc
    .json()
    .chain((j) =>
      fc
        .tuple(fc.constant(j), fc.nat(j.length), fc.constantFrom('', ',', ']', '}', '"', ' ', '\n', 'x'))
        .map(([s, at, ch]) => s.slice(0, at) + ch + s.slice(at)),
    );
  fc.assert(
    fc.property(fc.oneof(jsonish, nearJson, fc.json(), fc.string({ unit: 'binary' })), (text) => {
      assert.equal(checkJson(text) !== JSON_INVALID, parses(text), JSON.stringify(text));
    }),
    { numRuns: 20_000 },
  );
});

test('property: compactJson keeps the value and removes every line break', () => {
  fc.assert(
    fc.property(fc.jsonValue(), fc.constantFrom(1, 2, '\t', ' \r\n '), (value, indent) => {
      const pretty = JSON.stringify(value, null, indent) ?? 'null';
      assert.notEqual(checkJson(pretty), JSON_INVALID);
      const compact = compactJson(pretty);
      assert.ok(!/[\n\r\t]/.test(compact.replace(/"(?:[^"\\]|\\.)*"/g, '')), compact);
      assert.deepEqual(JSON.parse(compact), JSON.parse(pretty));
      assert.equal(checkJson(compact), JSON_ONE_LINE);
    }),
    { numRuns: 2_000 },
  );
});

test('scanNumber and isJsonInteger', () => {
  assert.equal(scanNumber('-12.5e+3x', 0), 8);
  assert.equal(scanNumber('x0', 1), 2);
  assert.equal(scanNumber('00', 0), 1); // a number ends after a leading zero; callers compare with the length
  for (const bad of ['', '-', '.5', '1.', '1e', '1e+', '+1', 'a']) assert.equal(scanNumber(bad, 0), -1, bad);
  assert.ok(isJsonInteger('-123', 4, false));
  assert.ok(isJsonInteger('0', 1, true));
  for (const [t, max, unsigned] of [
    ['-1', 5, true],
    ['12345', 4, false],
    ['01', 5, false],
    ['-', 5, false],
    ['', 5, false],
    ['1a', 5, false],
    ['-0', 5, true],
  ] as const) {
    assert.ok(!isJsonInteger(t, max, unsigned), t);
  }
  assert.ok(isJsonInteger('-0', 5, false)); // valid JSON; PostgreSQL never prints it
});
