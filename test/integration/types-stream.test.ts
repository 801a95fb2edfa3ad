/**
 * Every built-in type end to end: rows go through the real replication stream and the real CLI,
 * and each emitted value must equal PostgreSQL's own `to_jsonb(row)` under the normalisation that
 * docs/types.md states (test/fixtures/all-types.ts). Runs on the default major and, through the
 * smoke run, every other major.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import pg from 'pg';
import { SESSION_OPTIONS } from '../../src/postgres/connect.ts';
import { freshDatabase, eventually } from '../harness/pg.ts';
import { startPgcdc } from '../harness/cli.ts';
import {
  ALL_TYPES_TABLE,
  allTypesColumns,
  allTypesDdl,
  allTypesInserts,
  JsonNumber,
  normalise,
  parseJsonLossless,
  type LosslessJson,
} from '../fixtures/all-types.ts';

type LosslessObject = { [key: string]: LosslessJson };

function field(value: LosslessJson | undefined, key: string): LosslessJson | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof JsonNumber)
    ? value[key]
    : undefined;
}

test('every type through the replication stream equals to_jsonb', async () => {
  const db = await freshDatabase();
  const major = db.server.major;
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-types-'));
  for (const statement of allTypesDdl(major)) await db.sql.query(statement);
  const proc = startPgcdc([
    'run',
    '--source',
    db.url,
    '--slot',
    `s_${db.name}`,
    '--publication',
    'types_pub',
    '--tables',
    `public.${ALL_TYPES_TABLE}`,
    '--sink',
    'stdout',
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
  const inserts = allTypesInserts(major);
  for (const statement of inserts) await db.sql.query(statement);
  const lines = await eventually(() => {
    const got = proc
      .stdout()
      .split('\n')
      .filter((l) => l.length > 0);
    return got.length >= inserts.length ? got : undefined;
  }, 'one event per row');
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());

  // The reference reads with the same session settings pgcdc uses (IntervalStyle, DateStyle, ...).
  const refClient = new pg.Client({ connectionString: db.url, options: SESSION_OPTIONS });
  await refClient.connect();
  const reference = await refClient.query<{ id: number; j: string }>(
    `select id, to_jsonb(t)::text as j from ${ALL_TYPES_TABLE} t`,
  );
  await refClient.end();
  const expectedById = new Map(reference.rows.map((r) => [r.id, parseJsonLossless(r.j) as LosslessObject]));
  const columns = allTypesColumns(major);
  const mismatches: string[] = [];
  let compared = 0;
  for (const line of lines) {
    const after = field(field(parseJsonLossless(line), 'value'), 'after') as LosslessObject | undefined;
    assert.ok(after, 'insert events carry the row');
    const id = after.id instanceof JsonNumber ? Number(after.id.text) : NaN;
    const expected = expectedById.get(id);
    assert.ok(expected, `row ${id} exists in the source`);
    for (const column of columns) {
      const got = normalise(column.name, after[column.name] ?? null, 'pgcdc');
      const want = normalise(column.name, expected[column.name] ?? null, 'to_jsonb');
      compared++;
      if (!isDeepStrictEqual(got, want))
        mismatches.push(
          `row ${id} ${column.name} (${column.sqlType}): ${JSON.stringify(got)} vs ${JSON.stringify(want)}`,
        );
    }
  }
  assert.deepEqual(mismatches, [], `${mismatches.length} of ${compared} values differ`);
  assert.ok(compared >= columns.length * 5, `compared ${compared} values`);
});
