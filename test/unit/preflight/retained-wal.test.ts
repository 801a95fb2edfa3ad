import { test } from 'node:test';
import assert from 'node:assert/strict';
import { retainedWalRules } from '../../../src/preflight/retained-wal.ts';

test('slot-inactive-retaining-wal names each inactive slot over the threshold, its bytes and the fix', () => {
  const problems = retainedWalRules(
    [
      { name: 'old_slot', database: 'shop', retainedBytes: 3 * 1024 ** 3 },
      { name: 'small', database: 'shop', retainedBytes: 1024 },
      { name: "o'brien", database: null, retainedBytes: 5000 },
    ],
    2048,
  );
  assert.deepEqual(
    problems.map((p) => [p.severity, p.code]),
    [
      ['warning', 'slot-inactive-retaining-wal'],
      ['warning', 'slot-inactive-retaining-wal'],
    ],
  );
  assert.match(
    problems[0]?.message ?? '',
    /old_slot \(database shop\) is inactive and retains 3\.0 GiB \(3221225472 bytes\)/,
  );
  assert.match(problems[0]?.fix ?? '', /resume pgcdc .*pgcdc teardown --slot old_slot/);
  assert.match(problems[1]?.fix ?? '', /pg_drop_replication_slot\('o''brien'\)/);
  assert.deepEqual(retainedWalRules(undefined, 0), []);
});
