import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freshDatabase } from '../harness/pg.ts';

test('harness starts a logical-replication cluster with a fresh database', async () => {
  const db = await freshDatabase();
  const { rows } = await db.sql.query<{ wal_level: string }>(`select current_setting('wal_level') as wal_level`);
  assert.equal(rows[0]?.wal_level, 'logical');
});
