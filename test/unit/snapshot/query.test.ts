import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  copySql,
  ctidChunkSql,
  initialCursor,
  keysetChunkSql,
  selectColumns,
  type BackfillColumn,
  type BackfillTable,
} from '../../../src/snapshot/query.ts';
import { CdcError } from '../../../src/core/errors.ts';

const col = (name: string, typeName: string, collatable = false, typeSchema = 'pg_catalog'): BackfillColumn => ({
  name,
  typeOid: 0,
  typeMod: -1,
  typeSchema,
  typeName,
  collatable,
});

const orders: BackfillTable = {
  oid: 1,
  schema: 'shop',
  table: 'Orders',
  columns: [col('id', 'int4'), col('region', 'text', true), col('total', 'numeric')],
  keyIndexes: [1, 0],
};

test('first chunk: every column, key order with COLLATE "C" on text keys, limit', () => {
  assert.equal(
    keysetChunkSql(orders, null, 500),
    'SELECT "id", "region", "total" FROM "shop"."Orders" ORDER BY "region" COLLATE "C", "id" LIMIT 500',
  );
});

test('next chunk: a row comparison against typed literals, with the same collation as the order', () => {
  assert.equal(
    keysetChunkSql(orders, ["eu'west\\1", '42'], 10),
    `SELECT "id", "region", "total" FROM "shop"."Orders" WHERE ("region" COLLATE "C", "id") > ` +
      (`(E'eu''west\\\\1'::"pg_catalog"."text" COLLATE "C", '42'::"pg_catalog"."int4") ORDER BY "region" ` +
        `COLLATE "C", "id" LIMIT 10`),
  );
});

test('a single-column key needs no row; identifiers and type names are quoted', () => {
  const t: BackfillTable = {
    oid: 2,
    schema: 'we"ird',
    table: 'a b',
    columns: [col('k"ey', 'my type', false, 'Types')],
    keyIndexes: [0],
  };
  assert.equal(
    keysetChunkSql(t, ['x'], 1),
    `SELECT "k""ey" FROM "we""ird"."a b" WHERE "k""ey" > 'x'::"Types"."my type" ORDER BY "k""ey" LIMIT 1`,
  );
});

test('keyless tables: ctid page ranges, open-ended last range', () => {
  const t: BackfillTable = {
    oid: 3,
    schema: 'public',
    table: 'log',
    columns: [col('line', 'text', true)],
    keyIndexes: [],
  };
  assert.equal(
    ctidChunkSql(t, 0, 128),
    `SELECT "line" FROM "public"."log" WHERE ctid >= '(0,0)'::tid AND ctid < '(128,0)'::tid`,
  );
  assert.equal(ctidChunkSql(t, 128, null), `SELECT "line" FROM "public"."log" WHERE ctid >= '(128,0)'::tid`);
  assert.deepEqual(initialCursor(t), { kind: 'ctid', nextPage: 0, done: false });
  assert.throws(() => keysetChunkSql(t, null, 10), CdcError);
  assert.throws(() => ctidChunkSql(t, -1, null), CdcError);
  assert.throws(() => ctidChunkSql(t, 1.5, null), CdcError);
});

test('bad cursors and sizes are refused', () => {
  assert.throws(() => keysetChunkSql(orders, ['only one'], 10), CdcError);
  assert.throws(() => keysetChunkSql(orders, null, 0), CdcError);
  assert.throws(() => keysetChunkSql(orders, ['a\0', '1'], 10), TypeError);
});

test('COPY wrapper and a table without columns', () => {
  assert.equal(copySql('SELECT 1'), 'COPY (SELECT 1) TO STDOUT');
  assert.equal(selectColumns({ oid: 4, schema: 's', table: 't', columns: [], keyIndexes: [] }), 'SELECT  FROM "s"."t"');
});
