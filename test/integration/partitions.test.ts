/**
 * Partitioned tables: events carry the partitioned table's name whether or not the publication
 * publishes via the root; a row moving between partitions replays correctly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freshDatabase, eventually, type TestDatabase } from '../harness/pg.ts';
import { commitOrder, readJsonl, replay, startPgcdc } from '../harness/cli.ts';

async function capture(db: TestDatabase, publication: string, viaRoot: boolean): Promise<void> {
  await db.sql.query(`create table measurements (id int, at date, v int, primary key (id, at)) partition by range (at);
    create table m_2025 partition of measurements for values from ('2025-01-01') to ('2026-01-01');
    create table m_2026 partition of measurements for values from ('2026-01-01') to ('2027-01-01')`);
  if (viaRoot)
    await db.sql.query(
      `create publication ${publication} for table measurements with (publish_via_partition_root = true)`,
    );
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-part-'));
  const proc = startPgcdc([
    'run',
    '--source',
    db.url,
    '--slot',
    `s_${db.name}`,
    '--publication',
    publication,
    '--tables',
    'public.measurements',
    '--out',
    path.join(dir, 'events'),
    '--offsets',
    path.join(dir, 'offsets.json'),
    '--log-format',
    'json',
  ]);
  await eventually(
    async () =>
      (await db.sql.query(`select 1 from pg_replication_slots where slot_name = $1`, [`s_${db.name}`])).rowCount === 1
        ? true
        : undefined,
    'slot',
  );
  await db.sql.query(`insert into measurements values (1, '2025-06-01', 10), (2, '2026-06-01', 20)`);
  await db.sql.query(`update measurements set v = 11 where id = 1`);
  await db.sql.query(`update measurements set at = '2026-02-01' where id = 1`); // moves to the other partition
  const events = await eventually(async () => {
    const all = await readJsonl(path.join(dir, 'events'));
    return all.length >= 5 ? commitOrder(all) : undefined;
  }, 'five events');
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
  assert.ok(
    events.every((e) => e.topic === `${db.name}.public.measurements` && e.value.source.table === 'measurements'),
    JSON.stringify(events.map((e) => e.topic)),
  );
  if (!viaRoot) assert.match(proc.stderr(), /reported under its partitioned table/);
  const rows = replay(events).tables.get(`${db.name}.public.measurements`);
  assert.deepEqual(
    [...(rows?.values() ?? [])].sort((a, b) => Number(a.id) - Number(b.id)),
    [
      { id: 1, at: '2026-02-01', v: 11 },
      { id: 2, at: '2026-06-01', v: 20 },
    ],
  );
}

test('leaf partitions are reported under the partitioned table (publication without via_root)', async (t) => {
  const db = await freshDatabase();
  if (db.server.major < 13) return t.skip('partitioned tables join publications from PostgreSQL 13');
  await capture(db, 'part_pub', false);
});

test('publish_via_partition_root publications carry the root name directly', async (t) => {
  const db = await freshDatabase();
  if (db.server.major < 13) return t.skip('publish_via_partition_root exists from PostgreSQL 13');
  await capture(db, 'root_pub', true);
});
