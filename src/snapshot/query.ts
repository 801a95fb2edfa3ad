/**
 * Chunk queries for backfills, and reading one chunk with `COPY (SELECT ...) TO STDOUT`.
 *
 * A keyed table is read in keyset chunks: `WHERE (k1, k2) > (last key) ORDER BY k1, k2 LIMIT n`.
 * The cursor is the key of the last row read, as the server's text, so a chunk is resumable from a
 * checkpoint and needs no server-side state (no cursor, no open transaction between chunks).
 * COPY cannot bind parameters, so the key values are inlined as literals cast to the column's type
 * (by its quoted, schema-qualified name); every identifier and literal goes through postgres/quote.ts.
 *
 * Collatable key columns (text, varchar, citext, domains and arrays of them...) are ordered and
 * compared with COLLATE "C": byte order is a total order that every server agrees on, whereas a
 * locale collation can change with the C library and a nondeterministic ICU collation can call
 * different keys equal, which would make a keyset skip rows. ORDER BY and WHERE use the same
 * collation, so the order the cursor moves in is the order rows come in. The price: an index with
 * the column's own collation cannot serve the ORDER BY, so each chunk is a top-n sort of the rows
 * past the cursor (docs/snapshots.md, tuning).
 *
 * A keyless table is read in ranges of heap pages by ctid (`ctid >= '(p,0)' AND ctid < '(q,0)'`),
 * which PostgreSQL 14+ answers with a TID range scan; before 14 every chunk is a filtered
 * sequential scan, so use large chunks there. The cursor is the next page.
 */
import type pg from 'pg';
import { CdcError } from '../core/errors.ts';
import { quoteIdent, quoteLiteral, quoteQualified } from '../postgres/quote.ts';
import { sourceFailure } from '../postgres/source-errors.ts';
import { copyOut } from '../postgres/copy-out.ts';
import { CopyTextParser, type CopyRow } from './copy-text.ts';
import type { ChunkCursor } from '../offsets/store.ts';

export interface BackfillColumn {
  readonly name: string;
  readonly typeOid: number;
  readonly typeMod: number;
  /** pg_type's schema and name: `'v'::"schema"."name"` casts a key literal to the column's type. */
  readonly typeSchema: string;
  readonly typeName: string;
  /** The column has a collation (pg_attribute.attcollation <> 0): ordered with COLLATE "C". */
  readonly collatable: boolean;
}

/** A table as the backfill reads it. Columns are in table order, the order pgoutput sends them. */
export interface BackfillTable {
  readonly oid: number;
  readonly schema: string;
  readonly table: string;
  readonly columns: readonly BackfillColumn[];
  /**
   * Indexes into `columns` of the event key (primary key, else replica identity index), in key order; empty: read by
   * ctid ranges. */
  readonly keyIndexes: readonly number[];
}

export function initialCursor(table: BackfillTable): ChunkCursor {
  return table.keyIndexes.length > 0
    ? { kind: 'key', after: null, done: false }
    : { kind: 'ctid', nextPage: 0, done: false };
}

function keyColumn(table: BackfillTable, index: number): BackfillColumn {
  const column = table.columns[index];
  if (column === undefined)
    throw new CdcError('INTERNAL', `key index ${index} is outside ${table.schema}.${table.table}'s columns`);
  return column;
}

function columnRef(column: BackfillColumn): string {
  return column.collatable ? `${quoteIdent(column.name)} COLLATE "C"` : quoteIdent(column.name);
}

function keyLiteral(column: BackfillColumn, text: string): string {
  const literal = `${quoteLiteral(text)}::${quoteQualified(column.typeSchema, column.typeName)}`;
  return column.collatable ? `${literal} COLLATE "C"` : literal;
}

/** `SELECT "a", "b" FROM "s"."t"`: every column, in table order. */
export function selectColumns(table: BackfillTable): string {
  // A table without columns still has rows; COPY prints each as an empty line.
  const list = table.columns.length === 0 ? '' : table.columns.map((c) => quoteIdent(c.name)).join(', ');
  return `SELECT ${list} FROM ${quoteQualified(table.schema, table.table)}`;
}

/**
 * The next keyset chunk: up to `limit` rows with a key greater than `after` (all rows when null),
 * in key order. `after` holds one text per key column.
 */
export function keysetChunkSql(
  table: BackfillTable,
  after: readonly string[] | null,
  limit: number,
  filter?: string,
): string {
  if (table.keyIndexes.length === 0)
    throw new CdcError('INTERNAL', `${table.schema}.${table.table} has no key; read it by ctid`);
  if (!Number.isInteger(limit) || limit < 1)
    throw new CdcError('INTERNAL', `chunk size must be a positive integer, not ${limit}`);
  const keys = table.keyIndexes.map((i) => keyColumn(table, i));
  const conditions: string[] = [];
  if (after !== null) {
    if (after.length !== keys.length)
      throw new CdcError('INTERNAL', `a cursor of ${after.length} values for a key of ${keys.length} columns`);
    const left = keys.map(columnRef);
    const right = keys.map((k, i) => keyLiteral(k, after[i] as string));
    // A row comparison is lexicographic, as the ORDER BY; a single column needs no row.
    conditions.push(keys.length === 1 ? `${left[0]} > ${right[0]}` : `(${left.join(', ')}) > (${right.join(', ')})`);
  }
  if (filter !== undefined) conditions.push(`(${filter})`);
  const where = conditions.length === 0 ? '' : ` WHERE ${conditions.join(' AND ')}`;
  return `${selectColumns(table)}${where} ORDER BY ${keys.map(columnRef).join(', ')} LIMIT ${limit}`;
}

/**
 * A keyset chunk given by its bounds: the rows with a key greater than `after` (from the lowest
 * when null) and at most `upTo` (to the highest when null), in key order. The parallel initial
 * snapshot reads a table as such ranges (initial-reader.ts), `upTo` found by `keyBoundarySql`.
 */
export function keyRangeChunkSql(
  table: BackfillTable,
  after: readonly string[] | null,
  upTo: readonly string[] | null,
): string {
  const { keys, conditions } = keyBounds(table, after, upTo);
  const where = conditions.length === 0 ? '' : ` WHERE ${conditions.join(' AND ')}`;
  return `${selectColumns(table)}${where} ORDER BY ${keys.map(columnRef).join(', ')}`;
}

/**
 * The key (key columns only) of the `rows`-th row after `after` in key order: the end of a keyset
 * chunk of `rows` rows, without reading them (an index-only walk over the keys when the index
 * serves the order). No row: fewer than `rows` remain.
 */
export function keyBoundarySql(table: BackfillTable, after: readonly string[] | null, rows: number): string {
  if (!Number.isInteger(rows) || rows < 1)
    throw new CdcError('INTERNAL', `chunk size must be a positive integer, not ${rows}`);
  const { keys, conditions } = keyBounds(table, after, null);
  const where = conditions.length === 0 ? '' : ` WHERE ${conditions.join(' AND ')}`;
  const list = keys.map((k) => quoteIdent(k.name)).join(', ');
  return (
    `SELECT ${list} FROM ${quoteQualified(table.schema, table.table)}${where} ` +
    `ORDER BY ${keys.map(columnRef).join(', ')} OFFSET ${rows - 1} LIMIT 1`
  );
}

/** The key columns and the conditions `key > after` and `key <= upTo`, compared as keysetChunkSql compares. */
function keyBounds(
  table: BackfillTable,
  after: readonly string[] | null,
  upTo: readonly string[] | null,
): { keys: BackfillColumn[]; conditions: string[] } {
  if (table.keyIndexes.length === 0)
    throw new CdcError('INTERNAL', `${table.schema}.${table.table} has no key; read it by ctid`);
  const keys = table.keyIndexes.map((i) => keyColumn(table, i));
  const left = keys.map(columnRef);
  const bound = (values: readonly string[], op: string): string => {
    if (values.length !== keys.length)
      throw new CdcError('INTERNAL', `a cursor of ${values.length} values for a key of ${keys.length} columns`);
    const right = keys.map((k, i) => keyLiteral(k, values[i] as string));
    return keys.length === 1 ? `${left[0]} ${op} ${right[0]}` : `(${left.join(', ')}) ${op} (${right.join(', ')})`;
  };
  const conditions: string[] = [];
  if (after !== null) conditions.push(bound(after, '>'));
  if (upTo !== null) conditions.push(bound(upTo, '<='));
  return { keys, conditions };
}

/**
 * The keys (key columns only, in key order) greater than `after` (from the lowest when null) and at
 * most `upTo` (to the highest when null), up to `limit` of them: a lost-slot recovery's key read of a
 * chunk's range (recovery-deletes.ts), compared exactly as keysetChunkSql compares.
 */
export function keyRangeSql(
  table: BackfillTable,
  after: readonly string[] | null,
  upTo: readonly string[] | null,
  limit: number,
): string {
  const { keys, conditions } = keyBounds(table, after, upTo);
  const where = conditions.length === 0 ? '' : ` WHERE ${conditions.join(' AND ')}`;
  const list = keys.map((k) => quoteIdent(k.name)).join(', ');
  return (
    `SELECT ${list} FROM ${quoteQualified(table.schema, table.table)}${where} ` +
    `ORDER BY ${keys.map(columnRef).join(', ')} LIMIT ${limit}`
  );
}

function tid(page: number): string {
  if (!Number.isInteger(page) || page < 0 || page > 0xffffffff)
    throw new CdcError('INTERNAL', `${page} is not a heap page number`);
  return `${quoteLiteral(`(${page},0)`)}::tid`;
}

/**
 * Rows in heap pages [fromPage, toPage), or from `fromPage` to the end when `toPage` is null; only
 * those meeting `filter` (a trusted SQL condition, see visibility.ts) when one is given.
 */
export function ctidChunkSql(table: BackfillTable, fromPage: number, toPage: number | null, filter?: string): string {
  const upper = toPage === null ? '' : ` AND ctid < ${tid(toPage)}`;
  return (
    `${selectColumns(table)} WHERE ctid >= ` + `${tid(fromPage)}${upper}${filter === undefined ? '' : ` AND ${filter}`}`
  );
}

/** Wraps a SELECT for reading in COPY's text format. */
export function copySql(select: string): string {
  return `COPY (${select}) TO STDOUT`;
}

/**
 * Runs `COPY (select) TO STDOUT` on `client` and returns its rows parsed (CopyTextParser).
 * `select` must list `columns` columns. The rows of one chunk are held in memory: the chunk size
 * bounds it.
 */
export async function copyRows(client: pg.ClientBase, select: string, columns: number): Promise<CopyRow[]> {
  const rows: CopyRow[] = [];
  const parser = new CopyTextParser(columns);
  parser.push(await copyBytes(client, select), rows);
  parser.end();
  return rows;
}

/**
 * Runs `COPY (select) TO STDOUT` on `client` and returns its text as one buffer of whole rows: the
 * initial snapshot's fast path reads the rows in place (source/copy-row.ts).
 */
export async function copyBytes(client: pg.ClientBase, select: string): Promise<Buffer> {
  try {
    return await copyOut(client, copySql(select));
  } catch (cause) {
    if (cause instanceof CdcError) throw cause;
    const typed = sourceFailure(cause, `reading ${select.slice(0, 120)}`);
    if (typed.code !== 'SOURCE_QUERY_FAILED') throw typed;
    const message = cause instanceof Error ? cause.message : String(cause);
    throw new CdcError('SOURCE_QUERY_FAILED', `reading ${select.slice(0, 120)} failed: ${message}`, {
      cause,
      retryable: true,
    });
  }
}

/** What `readChunk` read: the rows and the cursor after them. */
export interface Chunk {
  readonly rows: CopyRow[];
  readonly next: ChunkCursor;
}

export interface ChunkSizing {
  /** Rows per keyset chunk. */
  readonly chunkRows: number;
  /** Heap pages per ctid chunk. */
  readonly chunkPages: number;
  /** The table's size in pages when its backfill started; the ctid chunk at or past it is open-ended. */
  readonly relationPages: number;
}

/**
 * Reads the chunk after `cursor`. A cursor that is `done` yields no rows. `filter`: a trusted SQL
 * condition rows must meet (see ctidChunkSql); a keyset chunk then holds up to `chunkRows` rows
 * that meet it, and the cursor moves past the last of them.
 */
export async function readChunk(
  client: pg.ClientBase,
  table: BackfillTable,
  cursor: ChunkCursor,
  sizing: ChunkSizing,
  filter?: string,
): Promise<Chunk> {
  if (cursor.done) return { rows: [], next: cursor };
  const width = table.columns.length;
  if (cursor.kind === 'key') {
    const rows = await copyRows(client, keysetChunkSql(table, cursor.after, sizing.chunkRows, filter), width);
    const last = rows[rows.length - 1];
    if (last === undefined) return { rows, next: { kind: 'key', after: cursor.after, done: true } };
    const after = table.keyIndexes.map((i) => {
      const value = last[i];
      // A primary key or replica identity index column is never NULL.
      if (value === null || value === undefined)
        throw new CdcError('INTERNAL', `a key column of ${table.schema}.${table.table} read as NULL`);
      return value;
    });
    return { rows, next: { kind: 'key', after, done: rows.length < sizing.chunkRows } };
  }
  // The last chunk is open-ended, so pages added since the size was read are read too.
  const toPage =
    cursor.nextPage + sizing.chunkPages >= sizing.relationPages ? null : cursor.nextPage + sizing.chunkPages;
  const rows = await copyRows(client, ctidChunkSql(table, cursor.nextPage, toPage, filter), width);
  return {
    rows,
    next:
      toPage === null
        ? { kind: 'ctid', nextPage: cursor.nextPage, done: true }
        : { kind: 'ctid', nextPage: toPage, done: false },
  };
}
