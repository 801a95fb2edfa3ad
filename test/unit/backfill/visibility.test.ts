/**
 * The xmin condition that reads a keyless table as an older snapshot saw it (backfill/visibility.ts).
 * Its behaviour on a real server is tested by test/integration/snapshot-keyless.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSnapshotText, visibleInSnapshotSql } from '../../../src/backfill/visibility.ts';

test('parses snapshot text with 64-bit xids', () => {
  assert.deepEqual(parseSnapshotText('4294967300:4294967310:4294967303,4294967305'), {
    xmin: 4294967300n,
    xmax: 4294967310n,
    xip: [4294967303n, 4294967305n],
  });
  assert.deepEqual(parseSnapshotText('10:10:'), { xmin: 10n, xmax: 10n, xip: [] });
  assert.throws(() => parseSnapshotText('10:x:'), /unexpected snapshot text/);
});

test('leaves out the xids from the old xmax to the read\'s xmax and the old running list, as 32-bit residues', () => {
  const sql = visibleInSnapshotSql('4294967300:4294967310:4294967303,4294967305', '4294967400:4294967500:4294967450');
  // xmax 2^32 + 14 has residue 14; 190 xids were assigned since.
  assert.equal(sql, "NOT ((xmin::text::bigint - 14 + 4294967296) % 4294967296 < 190 OR xmin::text::bigint = ANY ('{7,9}'::bigint[]))");
  assert.equal(visibleInSnapshotSql('5:9:', '5:9:'), 'NOT ((xmin::text::bigint - 9 + 4294967296) % 4294967296 < 0)');
});

test('refuses when the xids since the snapshot could wrap around', () => {
  assert.throws(() => visibleInSnapshotSql('1:10:', `1:${10 + 2 ** 31}:`), /more than 2\^31 transactions/);
});
