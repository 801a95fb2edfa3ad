/**
 * Schema-change events (`schemaChanges.events`): one event per new table shape on
 * `<prefix>.schema_changes`, exactly once across restarts (the shapes are stored with the
 * checkpoint), including DDL made while pgcdc was down and a table dropped and created again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freshDatabase, eventually, type TestDatabase } from '../harness/pg.ts';
import { readJsonl, startPgcdc, type DeliveredEvent } from '../harness/cli.ts';
import { caughtUp } from '../harness/snapshots.ts';

interface SchemaValue {
  change: string;
  relation_id: number;
  table: { columns: { name: string; type_oid: number; key: boolean }[] };
  previous: { name: string }[] | null;
}

async function start(db: TestDatabase, dir: string): Promise<ReturnType<typeof startPgcdc>> {
  const config = path.join(dir, 'pgcdc.yaml');
  await writeFile(config, 'schemaChanges:\n  events: true\n');
  const proc = startPgcdc([
    'run',
    '--config',
    config,
    '--source',
    db.url,
    '--slot',
    `s_${db.name}`,
    '--publication',
    'sc_pub',
    '--tables',
    'public.shapes',
    '--out',
    path.join(dir, 'events'),
    '--offsets',
    path.join(dir, 'offsets.json'),
    '--log-format',
    'json',
    '--snapshot-mode',
    'never',
  ]);
  await eventually(() => (proc.stderr().includes('"msg":"streaming"') ? true : undefined), 'pgcdc to stream');
  return proc;
}

async function stop(db: TestDatabase, dir: string, proc: ReturnType<typeof startPgcdc>): Promise<void> {
  await eventually(
    async () => ((await caughtUp(db.sql, path.join(dir, 'offsets.json'))) ? true : undefined),
    'caught up',
  );
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
}

async function schemaEvents(
  db: TestDatabase,
  dir: string,
): Promise<(DeliveredEvent & { value: DeliveredEvent['value'] & SchemaValue })[]> {
  return (await readJsonl(path.join(dir, 'events'))).filter(
    (e) => e.topic === `${db.name}.schema_changes`,
  ) as (DeliveredEvent & { value: DeliveredEvent['value'] & SchemaValue })[];
}

test('schema-change events: one per new shape, none for a restart, DDL while down, drop and recreate', async () => {
  const db = await freshDatabase();
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-schemachg-'));
  await db.sql.query(`create table shapes (id int primary key, a int)`);
  let proc = await start(db, dir);
  await db.sql.query(`insert into shapes values (1, 1)`);
  await db.sql.query(`alter table shapes add column b text; insert into shapes values (2, 2, 'b')`);
  await db.sql.query(`alter table shapes rename column a to aa; update shapes set b = 'c' where id = 1`);
  await db.sql.query(`insert into shapes values (3, 3, 'x')`); // same shape: no event
  await stop(db, dir, proc);
  let events = await schemaEvents(db, dir);
  assert.deepEqual(
    events.map((e) => e.value.change),
    ['create', 'alter', 'alter'],
  );
  assert.deepEqual(
    events[1]?.value.table.columns.map((c) => c.name),
    ['id', 'a', 'b'],
  );
  assert.deepEqual(
    events[1]?.value.previous?.map((c) => c.name),
    ['id', 'a'],
  );
  assert.deepEqual(
    events[2]?.value.table.columns.map((c) => c.name),
    ['id', 'aa', 'b'],
  );
  assert.equal(events[0]?.value.table.columns[0]?.key, true);

  // A restart sends every Relation again: no event, the shape is unchanged.
  proc = await start(db, dir);
  await db.sql.query(`insert into shapes values (4, 4, 'y')`);
  await stop(db, dir, proc);
  assert.equal((await schemaEvents(db, dir)).length, 3);

  // DDL while pgcdc is down: exactly one event when it is next used.
  await db.sql.query(`alter table shapes alter column aa type bigint`);
  proc = await start(db, dir);
  await db.sql.query(`insert into shapes values (5, 5, 'z')`);
  await db.sql.query(
    `drop table shapes; create table shapes (id int primary key, note text); alter publication sc_pub add ` +
      `table shapes; insert into shapes values (1, 'n')`,
  );
  await stop(db, dir, proc);
  events = await schemaEvents(db, dir);
  assert.deepEqual(
    events.map((e) => e.value.change),
    ['create', 'alter', 'alter', 'alter', 'create'],
  );
  assert.equal(events[3]?.value.table.columns[1]?.type_oid, 20, 'aa is bigint now');
  assert.notEqual(events[4]?.value.relation_id, events[0]?.value.relation_id, 'the recreated table is a new relation');
  assert.equal(new Set(events.map((e) => e.id)).size, events.length);
});
