/**
 * The demo's end-to-end check: replay every event of the JSONL files onto empty tables
 * (key -> after; a delete removes the key, a truncate clears the table) and compare the result
 * with the source tables, row by row.
 *
 * What is compared: for every row, its primary key and EVERY column. The source side is read with
 * SQL that yields the encoding the events use (docs/types.md): `to_jsonb(col)`
 * for numbers, text, uuid, enums, arrays and jsonb; `col::text` for numeric (exact digits);
 * base64 for bytea. Timestamps are compared as instants at microsecond precision (both sides are
 * brought to `YYYY-MM-DDTHH:MM:SS.ffffffZ`), because to_jsonb prints `+00:00` where the events
 * print `Z` and drop trailing zeros. The column kinds come from the catalog, not from a list here.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type pg from 'pg';
import { quoteIdent, quoteLiteral, quoteQualified } from '../postgres/quote.ts';

const UNAVAILABLE = '__pgcdc_unavailable_value';

type Kind = 'json' | 'text' | 'instant' | 'bytea';
type Row = Record<string, unknown>;

interface Column {
  readonly name: string;
  readonly kind: Kind;
}

export interface TableReport {
  readonly table: string;
  readonly ops: Readonly<Record<string, number>>;
  readonly sourceRows: number;
  readonly matched: number;
  readonly lost: number;
  readonly extra: number;
  readonly mismatched: number;
  /** A few differences, for the person reading the summary. */
  readonly examples: readonly string[];
}

export interface VerifyReport {
  readonly tables: readonly TableReport[];
  readonly events: number;
  /** Events whose id was already seen (the JSONL sink is exactly-once: expect 0). */
  readonly duplicates: number;
  /** Lines that are not events. */
  readonly malformed: number;
  readonly ok: boolean;
}

/** Any JSON value with object keys sorted, so equal values give equal strings. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Row).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

const INSTANT = /^(\d{4,}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?(Z|[+-]00(?::?00)?)?$/;

/** A UTC timestamp in one spelling; anything else is returned unchanged (and will not match). */
function canonicalInstant(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  const m = INSTANT.exec(value);
  if (!m) return value;
  return `${m[1]}T${m[2]}.${(m[3] ?? '').padEnd(6, '0')}${m[4] === undefined ? '' : 'Z'}`;
}

function normalise(row: Row, columns: readonly Column[]): Row {
  const out: Row = {};
  for (const [name, value] of Object.entries(row)) out[name] = value;
  for (const column of columns) if (column.kind === 'instant') out[column.name] = canonicalInstant(row[column.name]);
  return out;
}

function keyOf(row: Row, key: readonly string[]): string {
  return canonical(key.map((k) => row[k]));
}

function sqlFor(column: Column): string {
  const c = quoteIdent(column.name);
  switch (column.kind) {
    case 'text':
      return `to_jsonb(${c}::text)`;
    case 'bytea':
      // encode() wraps base64 every 76 characters; the events do not.
      return `to_jsonb(translate(encode(${c}, 'base64'), E'\\n', ''))`;
    case 'instant':
    case 'json':
      return `to_jsonb(${c})`;
  }
}

async function describe(client: pg.Client, table: string): Promise<{ columns: Column[]; key: string[] }> {
  const [schema = '', name = ''] = table.split('.');
  const oid = `${quoteLiteral(quoteQualified(schema, name))}::regclass`;
  const cols = await client.query<{ name: string; type: string }>(
    `select a.attname as name, t.typname as type from pg_attribute a join pg_type t on t.oid = a.atttypid
      where a.attrelid = ${oid} and a.attnum > 0 and not a.attisdropped order by a.attnum`,
  );
  const key = await client.query<{ name: string }>(
    `select a.attname as name from pg_index i join lateral unnest(i.indkey) with ordinality k(attnum, n) on true
      join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum where i.indrelid = ` +
      `${oid} and i.indisprimary order by k.n`,
  );
  const kindOf = (type: string): Kind =>
    type === 'numeric' || type === 'money'
      ? 'text'
      : type === 'bytea'
        ? 'bytea'
        : type === 'timestamptz' || type === 'timestamp'
          ? 'instant'
          : 'json';
  return { columns: cols.rows.map((r) => ({ name: r.name, kind: kindOf(r.type) })), key: key.rows.map((r) => r.name) };
}

interface Replayed {
  readonly rows: Map<string, Row>;
  readonly ops: Record<string, number>;
}

interface EventLine {
  id: string;
  key: Row | null;
  op: string;
  before: Row | null;
  after: Row | null;
  table: string;
}

function isRow(value: unknown): value is Row {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function parseEvent(text: string): EventLine | undefined {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isRow(json) || typeof json.id !== 'string' || !isRow(json.value)) return undefined;
  const value = json.value;
  const source = value.source;
  if (
    !isRow(source) ||
    typeof value.op !== 'string' ||
    typeof source.schema !== 'string' ||
    typeof source.table !== 'string'
  )
    return undefined;
  return {
    id: json.id,
    key: isRow(json.key) ? json.key : null,
    op: value.op,
    before: isRow(value.before) ? value.before : null,
    after: isRow(value.after) ? value.after : null,
    table: `${source.schema}.${source.table}`,
  };
}

/** Replays every `*.jsonl` file of `dir`, in file order (per-table order is what matters). */
async function replay(
  dir: string,
): Promise<{ tables: Map<string, Replayed>; events: number; duplicates: number; malformed: number }> {
  const tables = new Map<string, Replayed>();
  const seen = new Set<string>();
  let events = 0;
  let duplicates = 0;
  let malformed = 0;
  const files = (await readdir(dir)).filter((f) => f.endsWith('.jsonl')).sort();
  for (const file of files) {
    for (const text of (await readFile(path.join(dir, file), 'utf8')).split('\n')) {
      if (text.length === 0) continue;
      const event = parseEvent(text);
      if (!event) {
        malformed++;
        continue;
      }
      events++;
      if (seen.has(event.id)) duplicates++;
      seen.add(event.id);
      let table = tables.get(event.table);
      if (!table) tables.set(event.table, (table = { rows: new Map(), ops: {} }));
      table.ops[event.op] = (table.ops[event.op] ?? 0) + 1;
      const keyColumns = Object.keys(event.key ?? {});
      const key = event.key ? keyOf(event.key, keyColumns) : '';
      if (event.op === 't') table.rows.clear();
      else if (event.op === 'd') table.rows.delete(key);
      else if (event.after) {
        const previous = table.rows.get(key);
        // A primary-key change: the old key (from `before`) is gone.
        if (event.before && keyOf(event.before, keyColumns) !== key) table.rows.delete(keyOf(event.before, keyColumns));
        const after: Row = { ...event.after };
        // Unchanged TOAST values are not in the event: keep what we had.
        for (const [name, value] of Object.entries(after))
          if (value === UNAVAILABLE && previous) after[name] = previous[name];
        table.rows.set(key, after);
      }
    }
  }
  return { tables, events, duplicates, malformed };
}

/** Replays `eventsDir` and compares with `tables` (`schema.table`) through `client`. */
export async function verifyShop(
  client: pg.Client,
  tables: readonly string[],
  eventsDir: string,
): Promise<VerifyReport> {
  const replayed = await replay(eventsDir);
  await client.query(`set timezone = 'UTC'`);
  const reports: TableReport[] = [];
  for (const table of tables) {
    const { columns, key } = await describe(client, table);
    const [schema = '', name = ''] = table.split('.');
    const select = columns.map((c) => `${quoteLiteral(c.name)}, ${sqlFor(c)}`).join(', ');
    const result = await client.query<{ row: Row }>(
      `select jsonb_build_object(${select}) as row from ${quoteQualified(schema, name)}`,
    );
    const source = new Map(result.rows.map(({ row }) => [keyOf(row, key), canonical(normalise(row, columns))]));
    const mine = replayed.tables.get(table) ?? { rows: new Map<string, Row>(), ops: {} };
    let matched = 0;
    let mismatched = 0;
    let lost = 0;
    const examples: string[] = [];
    for (const [k, expected] of source) {
      const got = mine.rows.get(k);
      if (!got) {
        lost++;
        if (examples.length < 3) examples.push(`lost ${table} ${k}`);
      } else if (canonical(normalise(got, columns)) === expected) matched++;
      else {
        mismatched++;
        if (examples.length < 3)
          examples.push(`mismatch ${table} ${k}: source ${expected} events ${canonical(normalise(got, columns))}`);
      }
    }
    let extra = 0;
    for (const k of mine.rows.keys()) {
      if (source.has(k)) continue;
      extra++;
      if (examples.length < 3) examples.push(`extra ${table} ${k}`);
    }
    reports.push({ table, ops: mine.ops, sourceRows: source.size, matched, lost, extra, mismatched, examples });
  }
  const ok =
    replayed.duplicates === 0 &&
    replayed.malformed === 0 &&
    reports.every((r) => r.lost === 0 && r.extra === 0 && r.mismatched === 0);
  return {
    tables: reports,
    events: replayed.events,
    duplicates: replayed.duplicates,
    malformed: replayed.malformed,
    ok,
  };
}
