/**
 * Smoke test run on every supported major (CI: PGCDC_TEST_PG=10..17 after the full suite on 18):
 * stream, stop cleanly, resume, and check the replayed state equals the source.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freshDatabase, eventually, TEST_MAJOR } from '../harness/pg.ts';
import { compareRows, readJsonl, replay, startPgcdc } from '../harness/cli.ts';

test(`PostgreSQL ${TEST_MAJOR}: stream, stop, resume, replay equals source`, async () => {
  const db = await freshDatabase();
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-smoke-'));
  await db.sql.query(
    `create table orders (id int primary key, total numeric(10,2), tags text[], meta jsonb, at timestamptz)`,
  );
  const args = [
    'run',
    '--source',
    db.url,
    '--slot',
    `s_${db.name}`,
    '--publication',
    'smoke_pub',
    '--tables',
    'public.orders',
    '--out',
    path.join(dir, 'events'),
    '--offsets',
    path.join(dir, 'offsets.json'),
    '--log-format',
    'json',
  ];
  const events = () => readJsonl(path.join(dir, 'events'));

  let proc = startPgcdc(args);
  const slot = async () =>
    (await db.sql.query(`select 1 from pg_replication_slots where slot_name = $1`, [`s_${db.name}`])).rowCount === 1 ||
    undefined;
  await eventually(slot, 'slot created');
  await db.sql.query(
    `insert into orders values (1, 19.90, '{a,b}', '{"gift": true}', '2026-11-21 10:00:00.123456+00'), (2, 5, ` +
      `'{}', null, null)`,
  );
  await db.sql.query(`update orders set total = 21.00 where id = 1`);
  await eventually(async () => ((await events()).length === 3 ? true : undefined), 'three events');
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());

  // Changes made while pgcdc is down are delivered after the restart, exactly once.
  await db.sql.query(
    `delete from orders where id = 2; insert into orders values (3, 7.5, '{"x y"}', '[1,2]', 'infinity')`,
  );
  proc = startPgcdc(args);
  await eventually(async () => ((await events()).length === 5 ? true : undefined), 'five events');
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());

  const all = await events();
  assert.equal(new Set(all.map((e) => e.id)).size, all.length, 'no duplicates');
  const first = all.find((e) => e.value.op === 'c');
  assert.deepEqual(first?.value.after, {
    id: 1,
    total: '19.90',
    tags: ['a', 'b'],
    meta: { gift: true },
    at: '2026-11-21T10:00:00.123456Z',
  });
  const { rows } = await db.sql.query<{ id: number; j: Record<string, unknown> }>(
    `select id, jsonb_build_object('id', id, 'total', total::text, 'tags', to_jsonb(tags), 'meta', meta,
            'at', case when at = 'infinity' then to_jsonb('infinity'::text) else to_jsonb(to_char(at at time ` +
      `zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')) end) as j
       from orders`,
  );
  const source = new Map(rows.map((r) => [JSON.stringify({ id: r.id }), r.j]));
  const replayed = replay(all).tables.get(`${db.name}.public.orders`);
  const normalised = new Map(
    [...(replayed ?? new Map<string, Record<string, unknown>>())].map(([k, v]) => [
      k,
      Object.fromEntries(
        Object.keys(v)
          .sort()
          .map((c) => [c, v[c]]),
      ),
    ]),
  );
  const sorted = new Map(
    [...source].map(([k, v]) => [
      k,
      Object.fromEntries(
        Object.keys(v)
          .sort()
          .map((c) => [c, v[c]]),
      ),
    ]),
  );
  assert.deepEqual(compareRows(normalised, sorted), { lost: 0, extra: 0, mismatched: 0 });
  const stored = JSON.parse(await readFile(path.join(dir, 'offsets.json'), 'utf8')) as { lsn: string };
  assert.match(stored.lsn, /^[0-9A-F]+\/[0-9A-F]+$/);
});
