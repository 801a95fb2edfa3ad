import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CdcError } from '../../../src/core/errors.ts';
import {
  encodeDate,
  encodeInterval,
  encodeTime,
  encodeTimestamp,
  encodeTimestamptz,
  encodeTimetz,
} from '../../../src/source/temporal.ts';

function rejects(encode: (text: string) => string, text: string, typeName: string): void {
  assert.throws(
    () => encode(text),
    (error: unknown) => error instanceof CdcError && error.code === 'VALUE_INVALID' && error.message.includes(typeName),
    `${typeName} ${JSON.stringify(text)} should be rejected`,
  );
}

test('date: ISO dates, astronomical BC years, expanded years past 9999, infinities', () => {
  assert.equal(encodeDate('2026-11-21'), '"2026-11-21"');
  assert.equal(encodeDate('0044-03-15 BC'), '"-000043-03-15"');
  assert.equal(encodeDate('0001-01-01 BC'), '"0000-01-01"');
  assert.equal(encodeDate('4714-11-24 BC'), '"-004713-11-24"');
  assert.equal(encodeDate('10000-01-01'), '"+010000-01-01"');
  assert.equal(encodeDate('5874897-12-31'), '"+5874897-12-31"');
  assert.equal(encodeDate('infinity'), '"infinity"');
  assert.equal(encodeDate('-infinity'), '"-infinity"');
  for (const bad of [
    '',
    '2026-1-01',
    '26-11-21',
    '2026-11-21 AD',
    '2026-11-21 BC ',
    '2026/11/21',
    'Infinity',
    '2026-11-21T',
  ])
    rejects(encodeDate, bad, 'date');
});

test('timestamptz: UTC with Z; other offsets kept as ±hh:mm', () => {
  assert.equal(encodeTimestamptz('2026-11-21 10:00:00.123456+00'), '"2026-11-21T10:00:00.123456Z"');
  assert.equal(encodeTimestamptz('2026-11-21 10:00:00+00'), '"2026-11-21T10:00:00Z"');
  assert.equal(encodeTimestamptz('0044-03-15 10:00:00.5+00 BC'), '"-000043-03-15T10:00:00.5Z"');
  assert.equal(encodeTimestamptz('12345-06-07 08:09:10+00'), '"+012345-06-07T08:09:10Z"');
  assert.equal(encodeTimestamptz('2026-11-21 10:00:00+05'), '"2026-11-21T10:00:00+05:00"');
  assert.equal(encodeTimestamptz('2026-11-21 10:00:00-03:30'), '"2026-11-21T10:00:00-03:30"');
  assert.equal(encodeTimestamptz('1850-01-01 00:00:00+00:01:15'), '"1850-01-01T00:00:00+00:01:15"');
  assert.equal(encodeTimestamptz('infinity'), '"infinity"');
  assert.equal(encodeTimestamptz('-infinity'), '"-infinity"');
  for (const bad of [
    '2026-11-21 10:00:00',
    '2026-11-21 10:00:00+0',
    '2026-11-21 10:00:00.+00',
    '2026-11-21T10:00:00+00',
    '2026-11-21 10:00+00',
    '2026-11-21 10:00:00+00 AD',
    '2026-11-21 10:00:00+00:0',
  ]) {
    rejects(encodeTimestamptz, bad, 'timestamptz');
  }
});

test('timestamp: no zone', () => {
  assert.equal(encodeTimestamp('2026-11-21 10:00:00.123456'), '"2026-11-21T10:00:00.123456"');
  assert.equal(encodeTimestamp('0044-03-15 10:00:00.5 BC'), '"-000043-03-15T10:00:00.5"');
  assert.equal(encodeTimestamp('10000-01-01 00:00:00'), '"+010000-01-01T00:00:00"');
  assert.equal(encodeTimestamp('-infinity'), '"-infinity"');
  for (const bad of ['2026-11-21 10:00:00+00', '2026-11-21', '2026-11-21 1:00:00', ''])
    rejects(encodeTimestamp, bad, 'timestamp');
});

test('time and timetz', () => {
  assert.equal(encodeTime('10:00:00.123456'), '"10:00:00.123456"');
  assert.equal(encodeTime('24:00:00'), '"24:00:00"');
  for (const bad of ['10:00', '10:00:00+00', '10:00:00.', 'infinity', '']) rejects(encodeTime, bad, 'time');
  assert.equal(encodeTimetz('10:00:00.123+05:30'), '"10:00:00.123+05:30"');
  assert.equal(encodeTimetz('10:00:00+00'), '"10:00:00+00:00"');
  assert.equal(encodeTimetz('23:59:59-08'), '"23:59:59-08:00"');
  assert.equal(encodeTimetz('00:00:00+05:30:15'), '"00:00:00+05:30:15"');
  for (const bad of ['10:00:00', '10:00:00+', '10:00:00Z', '10:00:00+00:00:00:00'])
    rejects(encodeTimetz, bad, 'timetz');
});

test('interval: the ISO 8601 duration as printed, anything else refused', () => {
  for (const t of ['P1Y2M3DT4H5M6.5S', 'PT0S', 'P-1Y-2M3DT-4H-5M-6.5S', 'P1W', 'PT-0.000001S'])
    assert.equal(encodeInterval(t), `"${t}"`);
  assert.equal(encodeInterval('infinity'), '"infinity"');
  assert.equal(encodeInterval('-infinity'), '"-infinity"');
  for (const bad of ['1 day', '@ 1 day', 'P', 'P1D ', 'p1d', '', '"P1D"']) rejects(encodeInterval, bad, 'interval');
});

test('property: timestamptz text of any instant becomes the instant JavaScript prints for it', () => {
  // Dates JavaScript can represent, printed the way PostgreSQL prints them, must parse back to the same instant.
  const min = Date.UTC(-4712, 0, 1);
  const max = Date.UTC(99999, 11, 31);
  fc.assert(
    fc.property(fc.integer({ min, max }), (ms) => {
      const d = new Date(ms);
      const year = d.getUTCFullYear();
      const bc = year <= 0;
      const pgYear = String(bc ? 1 - year : year).padStart(4, '0');
      const pad = (n: number): string => String(n).padStart(2, '0');
      const millis = d.getUTCMilliseconds();
      const fraction = millis === 0 ? '' : `.${String(millis).padStart(3, '0').replace(/0+$/, '')}`;
      const date = `${pgYear}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
      const time = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}${fraction}`;
      const text = `${date} ${time}+00${bc ? ' BC' : ''}`;
      const json = JSON.parse(encodeTimestamptz(text)) as string;
      assert.equal(new Date(json).getTime(), ms, `${text} -> ${json}`);
    }),
    { numRuns: 2_000 },
  );
});
