/**
 * The xmin condition that reads a keyless table as an older snapshot saw it (snapshot/visibility.ts).
 * Its behaviour on a real server is tested by test/integration/snapshot-keyless.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSnapshotText, visibleInSnapshotSql, xminComparable } from '../../../src/snapshot/visibility.ts';

test('parses snapshot text with 64-bit xids', () => {
  assert.deepEqual(parseSnapshotText('4294967300:4294967310:4294967303,4294967305'), {
    xmin: 4294967300n,
    xmax: 4294967310n,
    xip: [4294967303n, 4294967305n],
  });
  assert.deepEqual(parseSnapshotText('10:10:'), { xmin: 10n, xmax: 10n, xip: [] });
  assert.throws(() => parseSnapshotText('10:x:'), /unexpected snapshot text/);
});

test("leaves out the xids from the old xmax to the read's xmax and the old running list", () => {
  const sql = visibleInSnapshotSql('1000:1010:1003,1005', '1100:1200:1150');
  assert.equal(
    sql,
    'NOT ((xmin::text::bigint - 1010 + 4294967296) % 4294967296 < 190 OR xmin::text::bigint = ANY ' +
      "('{1003,1005}'::bigint[]))",
  );
  assert.equal(visibleInSnapshotSql('5:9:', '5:9:'), 'NOT ((xmin::text::bigint - 9 + 4294967296) % 4294967296 < 0)');
});

test('only while no xid can reach 2^32: a frozen row keeps its raw 32-bit xmin', () => {
  assert.equal(xminComparable('1:10:'), true);
  assert.equal(xminComparable(`1:${2 ** 31}:`), false);
  assert.throws(() => visibleInSnapshotSql(`1:${2 ** 31}:`, `1:${2 ** 31 + 5}:`), /cannot be told apart/);
  assert.throws(() => visibleInSnapshotSql('1:10:', `1:${10 + 2 ** 31}:`), /cannot be told apart/);
});
