/**
 * Chunk queries and COPY parsing against a real server: COPY's text is the output-function text
 * (what pgoutput sends) for every type of the all-types fixture; keyset chunks over composite and
 * text keys return every row once in COLLATE "C" order, also when the column's own collation
 * would order (or equate) them differently; keyless tables are read completely by ctid ranges.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { freshDatabase, onTeardown, TEST_MAJOR } from '../harness/pg.ts';
import { SESSION_OPTIONS } from '../../src/postgres/connect.ts';
import { copyRows, initialCursor, readChunk, selectColumns, type BackfillTable } from '../../src/snapshot/query.ts';
import type { ChunkCursor } from '../../src/offsets/store.ts';
import { chunkSizing, describeBackfillTable } from '../../src/snapshot/tables.ts';
import type { CopyRow } from '../../src/snapshot/copy-text.ts';
import { ALL_TYPES_TABLE, allTypesColumns, allTypesDdl, allTypesInserts } from '../fixtures/all-types.ts';

let client: pg.Client;
let major: number;

before(async () => {
  const db = await freshDatabase();
  major = db.server.major;
  client = new pg.Client({ connectionString: db.url, options: SESSION_OPTIONS });
  await client.connect();
  onTeardown(() => client.end());
});

/** Reads a whole table chunk by chunk; returns the rows in delivery order and the chunk count. */
async function readAll(table: BackfillTable, chunkRows: number): Promise<{ rows: CopyRow[]; chunks: number }> {
  const sizing = await chunkSizing(client, table, chunkRows);
  let cursor: ChunkCursor = initialCursor(table);
  const rows: CopyRow[] = [];
  let chunks = 0;
  while (!cursor.done) {
    const chunk = await readChunk(client, table, cursor, sizing);
    rows.push(...chunk.rows);
    cursor = chunk.next;
    chunks++;
    assert.ok(chunks < 10_000, 'the cursor does not advance');
  }
  return { rows, chunks };
}

test(`COPY text equals the output-function text for every type (PostgreSQL ${TEST_MAJOR})`, async () => {
  for (const statement of [...allTypesDdl(major), ...allTypesInserts(major)]) await client.query(statement);
  const columns = allTypesColumns(major);
  const list = columns.map((c) => c.name).join(', ');
  // Text-format results are the output functions' text, as in test/integration/types.test.ts.
  const reference = await client.query<(string | null)[]>({
    text: `select ${list} from ${ALL_TYPES_TABLE} order by id`,
    rowMode: 'array',
    types: { getTypeParser: () => (value: string) => value },
  });
  const copied = await copyRows(client, `select ${list} from ${ALL_TYPES_TABLE} order by id`, columns.length);
  assert.ok(copied.length >= 5);
  assert.deepEqual(copied, reference.rows);
  // And through the table description and a keyset chunk.
  const table = await describeBackfillTable(client, 'public', ALL_TYPES_TABLE, major);
  assert.deepEqual(
    table.columns.map((c) => c.name),
    columns.map((c) => c.name),
  );
  const { rows } = await readAll(table, 2);
  assert.deepEqual(rows, reference.rows);
});

const TRICKY = [
  '',
  ' ',
  'a',
  'A',
  'b',
  'B',
  'ä',
  'é',
  'e',
  'ß',
  'ss',
  'Z',
  'z',
  '\\',
  '\\N',
  'a\tb',
  'a\nb',
  "o'k",
  '"q"',
  '😀',
  '日本',
  '-',
  '_',
  '0',
  '10',
  '9',
  'a ',
  'a  ',
];

test('composite text+int keys: every row once, in COLLATE "C" order, whatever the chunk size', async () => {
  await client.query(`create table "Multi Key" ("Region" text, n int4, payload text, primary key ("Region", n))`);
  const values = TRICKY.flatMap((r, i) => [1, -2, 3].map((n) => [r, n, `p${i}:${n}`] as const));
  for (const [r, n, p] of values) await client.query(`insert into "Multi Key" values ($1, $2, $3)`, [r, n, p]);
  const table = await describeBackfillTable(client, 'public', 'Multi Key', major);
  assert.deepEqual(table.keyIndexes, [0, 1]);
  assert.deepEqual(
    table.columns.map((c) => c.collatable),
    [true, false, true],
  );
  const expected = await copyRows(client, `${selectColumns(table)} ORDER BY "Region" COLLATE "C", n`, 3);
  assert.equal(expected.length, values.length);
  for (const size of [1, 2, 7, 1000]) {
    const { rows, chunks } = await readAll(table, size);
    assert.deepEqual(rows, expected, `chunk size ${size}`);
    assert.ok(chunks >= Math.ceil(values.length / size), `chunk size ${size}: ${chunks} chunks`);
  }
});

test(
  'a text key whose column collation is case-insensitive (ICU, ' + 'nondeterministic) still gets every row once',
  async (t) => {
    const icu = await client.query(`select 1 from pg_collation where collprovider = 'i' limit 1`);
    if (major < 12 || icu.rowCount === 0) {
      t.skip('needs PostgreSQL 12+ built with ICU');
      return;
    }
    await client.query(
      `create collation if not exists ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)`,
    );
    // Under `ci`, 'a' = 'A': a keyset on the column's own collation would skip one of them. The
    // primary key itself also uses `ci`, so only case-distinct values that are unique under it go in.
    await client.query(`create table ci_keys (k text collate ci primary key, v int)`);
    const keys = ['a', 'B', 'c', 'É', 'ß', '😀', 'Zz', ' ', 'y', 'x\\', '\\N'];
    for (const [i, k] of keys.entries()) await client.query(`insert into ci_keys values ($1, $2)`, [k, i]);
    const table = await describeBackfillTable(client, 'public', 'ci_keys', major);
    const { rows } = await readAll(table, 2);
    const sortedC = [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    assert.deepEqual(
      rows.map((r) => r[0]),
      sortedC,
    );
  },
);

test('varchar, uuid and numeric keys with values that need exact literals', async () => {
  await client.query(`create table typed_keys (a varchar(20), b uuid, c numeric(30,10), primary key (a, b, c))`);
  const rows: [string, string, string][] = [];
  for (let i = 0; i < 40; i++) {
    rows.push([
      i % 3 === 0 ? 'x' : `v'${i % 5}\\`,
      `00000000-0000-0000-0000-0000000000${String(i % 7).padStart(2, '0')}`,
      `12345678901234567890.${String(i).padStart(10, '0')}`,
    ]);
  }
  for (const r of rows) await client.query(`insert into typed_keys values ($1, $2, $3) on conflict do nothing`, r);
  const table = await describeBackfillTable(client, 'public', 'typed_keys', major);
  const expected = await copyRows(client, `${selectColumns(table)} ORDER BY a COLLATE "C", b, c`, 3);
  const { rows: got } = await readAll(table, 3);
  assert.deepEqual(got, expected);
});

test('a keyless table is read completely by ctid ranges, holes and all', async () => {
  await client.query(`create table keyless (a int4, b text)`);
  await client.query(`insert into keyless select g, repeat('x', g % 200) from generate_series(1, 5000) g`);
  await client.query(`delete from keyless where a % 7 = 0`);
  await client.query(`insert into keyless values (null, null), (1, 'dup'), (1, 'dup')`);
  await client.query(`analyze keyless`);
  const table = await describeBackfillTable(client, 'public', 'keyless', major);
  assert.deepEqual(table.keyIndexes, []);
  const sizing = await chunkSizing(client, table, 300);
  assert.ok(sizing.relationPages > 5 && sizing.chunkPages >= 1);
  const { rows, chunks } = await readAll(table, 300);
  assert.ok(chunks > 3, `${chunks} chunks`);
  const expected = await copyRows(client, selectColumns(table), 2);
  const key = (r: CopyRow): string => JSON.stringify(r);
  assert.deepEqual(rows.map(key).sort(), expected.map(key).sort());
});
