/**
 * Schema changes while streaming: added, dropped, renamed and retyped columns show in the next
 * events; a restart right after DDL still decodes; a dropped and recreated table is recognised.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freshDatabase, eventually, type TestDatabase } from '../harness/pg.ts';
import { commitOrder, readJsonl, startPgcdc, type DeliveredEvent } from '../harness/cli.ts';

function args(db: TestDatabase, dir: string): string[] {
  return [
    'run',
    '--source',
    db.url,
    '--slot',
    `s_${db.name}`,
    '--publication',
    'schema_pub',
    '--tables',
    'public.evolving',
    '--out',
    path.join(dir, 'events'),
    '--offsets',
    path.join(dir, 'offsets.json'),
    '--log-format',
    'json',
    '--snapshot-mode',
    'never',
  ];
}

async function events(dir: string, count: number): Promise<DeliveredEvent[]> {
  return eventually(async () => {
    const all = commitOrder(await readJsonl(path.join(dir, 'events')));
    return all.length >= count ? all : undefined;
  }, `${count} events`);
}

test('added, dropped, renamed and retyped columns; restart after DDL; drop and recreate', async () => {
  const db = await freshDatabase();
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-schema-'));
  await db.sql.query(`create table evolving (id int primary key, a int, b text)`);
  let proc = startPgcdc(args(db, dir));
  await eventually(
    async () =>
      (await db.sql.query(`select 1 from pg_replication_slots where slot_name = $1`, [`s_${db.name}`])).rowCount === 1
        ? true
        : undefined,
    'slot',
  );
  await db.sql.query(`insert into evolving values (1, 10, 'x')`);
  await db.sql.query(`alter table evolving add column c numeric default 1.5`);
  await db.sql.query(`insert into evolving values (2, 20, 'y', 2.25)`);
  await db.sql.query(`alter table evolving drop column a`);
  await db.sql.query(`update evolving set b = 'z' where id = 2`);
  await db.sql.query(`alter table evolving rename column b to label`);
  await db.sql.query(`insert into evolving values (3, 'w', 3)`);
  await db.sql.query(`alter table evolving alter column label type int using length(label)`);
  await db.sql.query(`insert into evolving values (4, 42, 4)`);
  let all = await events(dir, 5);
  assert.deepEqual(
    all.map((e) => e.value.after),
    [
      { id: 1, a: 10, b: 'x' },
      { id: 2, a: 20, b: 'y', c: '2.25' },
      { id: 2, b: 'z', c: '2.25' },
      { id: 3, label: 'w', c: '3' },
      { id: 4, label: 42, c: '4' },
    ],
  );

  // Stop, change the schema while pgcdc is down, restart: the new Relation message decodes it.
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
  await db.sql.query(`alter table evolving add column d jsonb; insert into evolving values (5, 5, 5, '{"k": [1]}')`);
  proc = startPgcdc(args(db, dir));
  all = await events(dir, 6);
  assert.deepEqual(all[5]?.value.after, { id: 5, label: 5, c: '5', d: { k: [1] } });

  // Dropped and recreated under the same name: a new relation with its own columns.
  await db.sql.query(
    `drop table evolving; create table evolving (id text primary key, note text); alter publication schema_pub ` +
      `add table evolving`,
  );
  await db.sql.query(`insert into evolving values ('k1', 'new table')`);
  all = await events(dir, 7);
  assert.deepEqual(all[6]?.key, { id: 'k1' });
  assert.deepEqual(all[6]?.value.after, { id: 'k1', note: 'new table' });
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
});
