import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compareLsn, formatLsn, parseLsn, tryParseLsn } from '../../../src/protocol/lsn.ts';
import { assertCdcError } from './assertions.ts';

void test('parses LSNs as PostgreSQL prints them', () => {
  assert.equal(parseLsn('16/B374D848'), 0x16_b374d848);
  assert.equal(parseLsn('0/0'), 0);
  assert.equal(parseLsn('0/1A2B3C8'), 0x1a2b3c8);
  assert.equal(parseLsn('0/01A2B3C8'), 0x1a2b3c8, 'zero-padded low half (as PostgreSQL 19 may print it)');
  assert.equal(parseLsn('16/b374d848'), 0x16_b374d848, 'lowercase');
  assert.equal(parseLsn('1FFFFF/FFFFFFFF'), Number.MAX_SAFE_INTEGER);
});

void test('formats uppercase and unpadded, like pg_lsn output', () => {
  assert.equal(formatLsn(0x16_b374d848), '16/B374D848');
  assert.equal(formatLsn(0), '0/0');
  assert.equal(formatLsn(0x1a2b3c8), '0/1A2B3C8');
  assert.equal(formatLsn(0x1_0000_0000), '1/0');
  assert.equal(formatLsn(Number.MAX_SAFE_INTEGER), '1FFFFF/FFFFFFFF');
});

void test('format and parse round-trip every safe LSN', () => {
  fc.assert(
    fc.property(fc.maxSafeNat(), (lsn) => parseLsn(formatLsn(lsn)) === lsn),
    { numRuns: 2000 },
  );
});

void test('invalid text throws PROTOCOL_INVALID naming the input; tryParseLsn returns undefined', () => {
  for (const text of [
    '',
    '0',
    '/',
    '1/',
    '/1',
    'g/1',
    '1/g',
    '1/2/3',
    ' 1/2',
    '1/2 ',
    '123456789/0',
    '0/123456789',
    '-1/0',
    '0x1/0',
    '1.5/0',
  ]) {
    assertCdcError(() => parseLsn(text), 'PROTOCOL_INVALID', /is not an LSN/);
    assert.equal(tryParseLsn(text), undefined, text);
  }
  assertCdcError(() => parseLsn('200000/0'), 'PROTOCOL_INVALID', /beyond 2\^53/);
  assertCdcError(() => parseLsn('FFFFFFFF/FFFFFFFF'), 'PROTOCOL_INVALID', /beyond 2\^53/);
  assert.equal(tryParseLsn('FFFFFFFF/FFFFFFFF'), undefined);
  assertCdcError(() => parseLsn('x'.repeat(100)), 'PROTOCOL_INVALID', /x{40}\.\.\./);
});

void test('formatting a non-LSN number throws', () => {
  for (const value of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
    assertCdcError(() => formatLsn(value), 'PROTOCOL_INVALID');
  }
});

void test('compareLsn orders numerically, not as text', () => {
  assert.equal(compareLsn(parseLsn('0/9'), parseLsn('0/10')), -1);
  assert.equal(compareLsn(parseLsn('1/0'), parseLsn('0/FFFFFFFF')), 1);
  assert.equal(compareLsn(5, 5), 0);
  assert.deepEqual(['1/0', '0/A', '0/2'].map(parseLsn).sort(compareLsn).map(formatLsn), ['0/2', '0/A', '1/0']);
});
