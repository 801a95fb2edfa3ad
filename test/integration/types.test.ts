/**
 * Every built-in type against a real server: the text each column's output function prints (what
 * pgoutput sends; `col::text` calls the same function under the same session settings) goes
 * through pgcdc's encoders, and the JSON must match `to_jsonb(row)` under the fixture's
 * `normalise`. Run per major with PGCDC_TEST_PG=10..18.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { freshDatabase, onTeardown, TEST_MAJOR } from '../harness/pg.ts';
import { SESSION_OPTIONS } from '../../src/postgres/connect.ts';
import { loadPgTypes } from '../../src/postgres/pg-types.ts';
import { DEFAULT_VALUE_OPTIONS, jsonEncoderFor, type PgType } from '../../src/source/values.ts';
import { BUILTIN_ARRAY_ELEMENTS, OID } from '../../src/source/type-oids.ts';
import {
  ALL_TYPES_TABLE,
  allTypesColumns,
  allTypesDdl,
  allTypesInserts,
  normalise,
  parseJsonLossless,
  type LosslessJson,
} from '../fixtures/all-types.ts';

let client: pg.Client;
let types: Map<number, PgType>;
let major: number;

before(async () => {
  const db = await freshDatabase();
  major = db.server.major;
  client = new pg.Client({ connectionString: db.url, options: SESSION_OPTIONS });
  await client.connect();
  onTeardown(() => client.end());
  for (const statement of [...allTypesDdl(major), ...allTypesInserts(major)]) await client.query(statement);
  types = await loadPgTypes(client);
});

test(`every column of every row matches to_jsonb (PostgreSQL ${TEST_MAJOR})`, async () => {
  const columns = allTypesColumns(major);
  const oids = await client.query<{ name: string; oid: string }>(
    `select attname as name, atttypid::text as oid from pg_attribute where attrelid = $1::regclass and attnum ` +
      `> 0 and not attisdropped`,
    [ALL_TYPES_TABLE],
  );
  const typeOf = new Map(oids.rows.map((r) => [r.name, Number(r.oid)]));
  const lookup = (oid: number): PgType | undefined => types.get(oid);
  const encoders = columns.map((c) => jsonEncoderFor(typeOf.get(c.name) ?? 0, lookup, DEFAULT_VALUE_OPTIONS));

  // Text-format results are the output function's text, exactly what pgoutput sends. (`col::text`
  // is not: bool and inet have their own casts to text.) Keep every value as the raw string.
  const texts = await client.query<unknown[]>({
    text: `select ${columns.map((c) => c.name).join(', ')} from ${ALL_TYPES_TABLE} order by id`,
    rowMode: 'array',
    types: { getTypeParser: () => (value: string) => value },
  });
  const reference = await client.query<{ j: string }>(
    `select to_jsonb(t)::text as j from ${ALL_TYPES_TABLE} t order by id`,
  );
  assert.equal(texts.rows.length, reference.rows.length);
  assert.ok(texts.rows.length >= 5);

  const mismatches: string[] = [];
  let compared = 0;
  texts.rows.forEach((row, r) => {
    const expected = parseJsonLossless(reference.rows[r]?.j ?? 'null') as Record<string, LosslessJson>;
    columns.forEach((column, c) => {
      const text = row[c];
      let json = 'null';
      if (text !== null) {
        assert.equal(typeof text, 'string');
        json = encoders[c]?.(text as string) ?? 'missing encoder';
        assert.doesNotThrow(() => JSON.parse(json), `${column.name}: ${json}`);
        assert.ok(!/[\n\r]/.test(json), `${column.name}: encoder output spans lines`);
      }
      const got = normalise(column.name, parseJsonLossless(json), 'pgcdc');
      const want = normalise(column.name, expected[column.name] ?? null, 'to_jsonb');
      compared++;
      try {
        assert.deepStrictEqual(got, want);
      } catch {
        mismatches.push(
          `row ${r + 1} ${column.name} (${column.sqlType}): text ` +
            `${JSON.stringify(text)} -> ${json}; to_jsonb ${JSON.stringify(expected[column.name])}`,
        );
      }
    });
  });
  assert.deepEqual(mismatches, [], `${mismatches.length} of ${compared} values differ`);
});

test('the built-in OID tables agree with pg_type on this major', () => {
  for (const [arrayOid, [elemOid, elemName]] of BUILTIN_ARRAY_ELEMENTS) {
    const array = types.get(arrayOid);
    if (array === undefined) {
      // Types added after this major (multiranges, xid8, jsonpath...) are simply absent.
      assert.equal(types.get(elemOid), undefined, `element ${elemName} exists but its array ${arrayOid} does not`);
      continue;
    }
    assert.equal(array.elemOid, elemOid, `array ${arrayOid}`);
    assert.equal(types.get(elemOid)?.name, elemName, `element of ${arrayOid}`);
  }
  // Every array type in pg_catalog is in the static table, except arrays of catalog row types.
  const missing = [...types.values()].filter(
    (t) =>
      t.schema === 'pg_catalog' &&
      t.elemOid !== 0 &&
      types.get(t.elemOid)?.kind !== 'c' &&
      !BUILTIN_ARRAY_ELEMENTS.has(t.oid),
  );
  assert.deepEqual(
    missing.map((t) => `${t.name} (${t.oid})`),
    [],
  );
  for (const [name, oid] of Object.entries(OID)) {
    if (name === 'xid8' && major < 13) continue; // added in PostgreSQL 13
    assert.equal(types.get(oid)?.name, name, `OID.${name}`);
  }
});

test('loadPgTypes describes arrays, domains, enums, composites and delimiters', () => {
  const byName = (name: string): PgType => {
    const found = [...types.values()].find((t) => t.name === name && t.schema !== 'information_schema');
    assert.ok(found, `type ${name}`);
    return found;
  };
  assert.equal(byName('_int4').elemOid, 23);
  assert.equal(byName('int4').elemOid, 0);
  // Subscriptable fixed-length types and the vector types are not arrays.
  for (const name of ['point', 'name', 'box', 'int2vector', 'oidvector']) assert.equal(byName(name).elemOid, 0, name);
  assert.equal(byName('box').delimiter, ';');
  assert.equal(byName('int4').delimiter, ',');
  const price = byName('price');
  assert.equal(price.kind, 'd');
  assert.equal(price.baseOid, OID.numeric);
  assert.equal(price.schema, 'public');
  assert.equal(byName('mood').kind, 'e');
  assert.equal(byName('pair').kind, 'c');
  assert.equal(byName('int4range').kind, 'r');
  assert.equal(byName('_mood').elemOid, byName('mood').oid);
  if (major >= 14) assert.equal(byName('int4multirange').kind, 'm');
  assert.equal(byName('hstore').kind, 'b');
  assert.equal(byName('_hstore').elemOid, byName('hstore').oid);
});
