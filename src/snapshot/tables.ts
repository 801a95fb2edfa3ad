/**
 * Catalog reads the backfill needs: a table's columns with their types and collatability, its
 * primary key, and its size. Read-only, on a query connection; run inside the snapshot's
 * transaction so the description matches the rows read.
 */
import type pg from 'pg';
import { CdcError } from '../core/errors.ts';
import type { GeneratedColumns } from '../postgres/catalog.ts';
import type { BackfillTable, ChunkSizing } from './query.ts';

interface ColumnRow {
  name: string;
  type_oid: number;
  type_mod: number;
  type_schema: string;
  type_name: string;
  collatable: boolean;
}

/**
 * The generated columns a snapshot reads when nothing says what the stream carries (initial_only,
 * which streams nothing): those pgcdc's own publication would publish, stored ones on 18+.
 */
export function defaultGeneratedColumns(major: number): GeneratedColumns {
  return major >= 18 ? 'stored' : 'none';
}

/**
 * Describes `schema.table`: columns in table order, without dropped columns, and with exactly the
 * generated columns (PostgreSQL 12+) the stream carries, so a snapshot row has the stream's shape:
 * stored ones when the publication publishes them (`generated`, 18+), never virtual ones (18+,
 * which pgoutput cannot send). The key is the event key the stream uses (source/relations.ts): the
 * primary key in its index order; without one, under REPLICA IDENTITY USING INDEX, the index's
 * columns in table order (the order pgoutput flags them in), which are unique and NOT NULL, so a
 * keyset walk over them is exact. A table with neither is read by ctid.
 */
export async function describeBackfillTable(
  client: pg.ClientBase,
  schema: string,
  table: string,
  major: number,
  generated: GeneratedColumns = defaultGeneratedColumns(major),
): Promise<BackfillTable> {
  const found = await client.query<{ oid: number; pk: string[] }>(
    `select c.oid::int as oid,
            coalesce((select array_agg(a.attname::text order by array_position(i.indkey::int2[], a.attnum))
                        from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = ` +
      `any(i.indkey::int2[])
                       where i.indrelid = c.oid and i.indisprimary),
                     (select array_agg(a.attname::text order by a.attnum)
                        from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = ` +
      `any(i.indkey::int2[])
                       where i.indrelid = c.oid and i.indisreplident and c.relreplident = 'i'),
                     '{}') as pk
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relname = $2 and c.relkind in ('r', 'p')`,
    [schema, table],
  );
  const row = found.rows[0];
  if (row === undefined) throw new CdcError('TABLE_MISSING', `table not found: ${schema}.${table}`);
  const generatedFilter =
    major < 12
      ? ''
      : generated === 'stored' && major >= 18
        ? `and a.attgenerated in ('', 's')`
        : `and a.attgenerated = ''`;
  const columns = await client.query<ColumnRow>(
    `select a.attname::text as name, a.atttypid::int as type_oid, a.atttypmod as type_mod,
            tn.nspname::text as type_schema, t.typname::text as type_name, a.attcollation <> 0 as collatable
       from pg_attribute a join pg_type t on t.oid = a.atttypid join pg_namespace tn on tn.oid = t.typnamespace
      where a.attrelid = $1 and a.attnum > 0 and not a.attisdropped ${generatedFilter}
      order by a.attnum`,
    [row.oid],
  );
  const list = columns.rows.map((c) => ({
    name: c.name,
    typeOid: c.type_oid,
    typeMod: c.type_mod,
    typeSchema: c.type_schema,
    typeName: c.type_name,
    collatable: c.collatable,
  }));
  const byName = new Map(list.map((c, i) => [c.name, i]));
  const keyIndexes = row.pk.map((name) => {
    const index = byName.get(name);
    if (index === undefined)
      throw new CdcError('INTERNAL', `key column ${name} of ${schema}.${table} is not a readable column`);
    return index;
  });
  return { oid: row.oid, schema, table, columns: list, keyIndexes };
}

/** Size facts for sizing chunks: heap pages now, and the planner's row estimate (-1 or 0 when never analyzed). */
export async function relationSize(
  client: pg.ClientBase,
  oid: number,
): Promise<{ pages: number; estimatedRows: number }> {
  const { rows } = await client.query<{ pages: string; tuples: number }>(
    `select (pg_relation_size($1::oid) / current_setting('block_size')::int)::text as pages, reltuples::float8 as tuples
       from pg_class where oid = $1::oid`,
    [oid],
  );
  const row = rows[0];
  if (row === undefined) throw new CdcError('TABLE_MISSING', `table ${oid} is gone`);
  return { pages: Number(row.pages), estimatedRows: row.tuples };
}

/**
 * Chunk sizing for one table: `chunkRows` per keyset chunk, and for ctid chunks as many pages as
 * hold about `chunkRows` rows by the planner's estimate (at least 1; 32 rows a page when unknown).
 */
export async function chunkSizing(
  client: pg.ClientBase,
  table: BackfillTable,
  chunkRows: number,
): Promise<ChunkSizing> {
  const size = await relationSize(client, table.oid);
  const perPage = size.estimatedRows > 0 && size.pages > 0 ? size.estimatedRows / size.pages : 32;
  return {
    chunkRows,
    chunkPages: Math.max(1, Math.floor(chunkRows / Math.max(1, perPage))),
    relationPages: size.pages,
  };
}
