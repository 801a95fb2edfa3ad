/**
 * Table selection: `--tables public.orders,sales.*`, `--exclude-tables`, and `--tables-file t.csv`
 * (no header, one `schema,table` per row: the bulk-upload format users of the hosted tools already
 * have). Pure: patterns are matched against a list of tables read from the catalog elsewhere.
 *
 * Grammar of one pattern: `[schema.]table`, a bare name meaning schema `public`. Parts in double
 * quotes are exact names (they may hold dots, commas or `*`); in an unquoted part `*` matches any
 * run of characters. Names are case-sensitive, as PostgreSQL stores them.
 */
import { CdcError } from '../core/errors.ts';

/** One part of a pattern: an exact name or a glob. */
export type NameMatcher = { readonly exact: string } | { readonly glob: RegExp; readonly text: string };

export interface TablePattern {
  readonly text: string;
  readonly schema: NameMatcher;
  readonly table: NameMatcher;
}

export interface CatalogTable {
  readonly schema: string;
  readonly table: string;
  /** A partition of a partitioned table: wildcards skip these (its root is captured instead). */
  readonly isPartition: boolean;
}

function matcher(part: string, hadQuotes: boolean): NameMatcher {
  if (hadQuotes || !part.includes('*')) return { exact: part };
  const source = part
    .split('*')
    .map((piece) => piece.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return { glob: new RegExp(`^${source}$`, 's'), text: part };
}

function invalid(text: string): CdcError {
  return new CdcError('CONFIG_INVALID', `table pattern ${JSON.stringify(text)} is not of the form schema.table`, {
    hint: 'write tables as schema.table or schema.* (quote names holding dots: "my.schema".t)',
  });
}

/** Parses one `--tables` entry. Throws CONFIG_INVALID naming the entry. */
export function parseTablePattern(text: string): TablePattern {
  const parts: { value: string; quoted: boolean }[] = [];
  let current = '';
  let quotedPart = false;
  let inQuotes = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') {
      if (inQuotes && text[i + 1] === '"') {
        current += '"';
        i++;
      } else {
        inQuotes = !inQuotes;
        quotedPart = true;
      }
    } else if (ch === '.' && !inQuotes) {
      parts.push({ value: current, quoted: quotedPart });
      current = '';
      quotedPart = false;
    } else current += ch;
  }
  parts.push({ value: current, quoted: quotedPart });
  if (inQuotes || parts.length > 2 || parts.some((p) => p.value.length === 0)) throw invalid(text);
  const [first, second] = parts;
  if (!first) throw invalid(text);
  if (!second) return { text, schema: { exact: 'public' }, table: matcher(first.value, first.quoted) };
  return { text, schema: matcher(first.value, first.quoted), table: matcher(second.value, second.quoted) };
}

/** Splits a `--tables` list on commas outside double quotes. */
export function splitTableList(list: string): string[] {
  const out: string[] = [];
  let current = '';
  let inQuotes = false;
  for (const ch of list) {
    if (ch === '"') inQuotes = !inQuotes;
    if (ch === ',' && !inQuotes) {
      out.push(current.trim());
      current = '';
    } else current += ch;
  }
  out.push(current.trim());
  return out.filter((entry) => entry.length > 0);
}

/**
 * Parses CSV (RFC 4180: fields in double quotes may hold commas, newlines and `""`). Blank lines
 * are skipped. Returns rows of fields.
 */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let fieldStarted = false;
  const endField = (): void => {
    row.push(fieldStarted ? field : field.trim());
    field = '';
    fieldStarted = false;
  };
  const endRow = (): void => {
    endField();
    if (!(row.length === 1 && row[0] === '')) rows.push(row);
    row = [];
  };
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text; // spreadsheets write a BOM
  for (let i = 0; i < body.length; i++) {
    const ch = body[i];
    if (quoted) {
      if (ch === '"' && body[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"' && field.trim() === '') {
      quoted = true;
      fieldStarted = true;
      field = '';
    } else if (ch === ',') endField();
    else if (ch === '\n') endRow();
    else if (ch === '\r') {
      if (body[i + 1] !== '\n') endRow();
    } else if (!fieldStarted) field += ch;
    // text after a closing quote (`"a"b`) is ignored, as spreadsheets do
  }
  if (quoted)
    throw new CdcError('CONFIG_INVALID', 'tables file: a quoted field is not closed', {
      hint: 'close every " in the CSV',
    });
  if (field !== '' || row.length > 0) endRow();
  return rows;
}

/**
 * Patterns from a tables file. A two-field row is `schema,table`, exact names (a table of `*`
 * means the whole schema); a one-field row is read like a `--tables` entry. `origin` names the
 * file in errors.
 */
export function patternsFromCsv(text: string, origin: string): TablePattern[] {
  return parseCsv(text).map((fields, index) => {
    const [schema, table, extra] = fields;
    const where = `${origin} row ${index + 1}`;
    if (extra !== undefined || schema === undefined || schema === '' || table === '') {
      throw new CdcError('CONFIG_INVALID', `${where}: expected schema,table`, {
        hint: 'one schema,table per row, no header',
      });
    }
    if (table === undefined) return { ...parseTablePattern(schema), text: schema };
    return {
      text: `${schema}.${table}`,
      schema: { exact: schema },
      table: table === '*' ? matcher('*', false) : { exact: table },
    };
  });
}

function matches(m: NameMatcher, name: string): boolean {
  return 'exact' in m ? m.exact === name : m.glob.test(name);
}

/** Whether `pattern` names the table (any table, partitions included: for rules, not the selection). */
export function tableMatches(pattern: TablePattern, schema: string, table: string): boolean {
  return matches(pattern.schema, schema) && matches(pattern.table, table);
}

function isExact(pattern: TablePattern): boolean {
  return 'exact' in pattern.schema && 'exact' in pattern.table;
}

export interface Selection {
  /** Sorted by schema, then table; no duplicates. */
  readonly tables: readonly CatalogTable[];
  /** Include patterns that matched no table (exact names not found, globs matching nothing). */
  readonly unmatched: readonly string[];
}

/**
 * Applies include and exclude patterns to the catalog's tables. A glob never selects a partition
 * (the partitioned table is captured instead); an exact name selects whatever it names.
 */
export function selectTables(
  catalog: readonly CatalogTable[],
  include: readonly TablePattern[],
  exclude: readonly TablePattern[],
): Selection {
  const chosen = new Map<string, CatalogTable>();
  const unmatched: string[] = [];
  for (const pattern of include) {
    let hit = false;
    for (const t of catalog) {
      if (!matches(pattern.schema, t.schema) || !matches(pattern.table, t.table)) continue;
      if (t.isPartition && !isExact(pattern)) continue;
      hit = true;
      chosen.set(JSON.stringify([t.schema, t.table]), t);
    }
    if (!hit) unmatched.push(pattern.text);
  }
  const kept = [...chosen.values()].filter(
    (t) => !exclude.some((p) => matches(p.schema, t.schema) && matches(p.table, t.table)),
  );
  kept.sort((a, b) => (a.schema === b.schema ? cmp(a.table, b.table) : cmp(a.schema, b.schema)));
  return { tables: kept, unmatched };
}

/** A `schema.table` name. */
export interface TableName {
  readonly schema: string;
  readonly table: string;
}

/**
 * The selection as a predicate over a relation met later (in the stream): `name` is its own name,
 * `root` its partitioned root when it is a partition. Same rules as selectTables (a glob never
 * selects a partition: its root is matched instead); an exclusion of the root excludes its
 * partitions. Without include patterns every table is selected but the excluded ones (the
 * publication decides what is sent).
 */
export function selectionMatcher(
  include: readonly TablePattern[],
  exclude: readonly TablePattern[],
): (name: TableName, root?: TableName) => boolean {
  const hit = (p: TablePattern, t: TableName): boolean => matches(p.schema, t.schema) && matches(p.table, t.table);
  return (name, root) => {
    if (exclude.some((p) => hit(p, name) || (root !== undefined && hit(p, root)))) return false;
    if (include.length === 0) return true;
    return (
      include.some((p) => (root === undefined || isExact(p)) && hit(p, name)) ||
      (root !== undefined && include.some((p) => hit(p, root)))
    );
  };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** `"schema"."table"`, the form parseTableName reads back exactly. */
export function qualifiedName(t: { schema: string; table: string }): string {
  return `"${t.schema.replaceAll('"', '""')}"."${t.table.replaceAll('"', '""')}"`;
}

/**
 * The tables among `tables` that `include` selects (all when empty) and `skip` does not. Used for
 * `snapshot.include` / `snapshot.skip`; patterns as in `--tables`.
 */
export function filterTables<T extends { readonly schema: string; readonly table: string }>(
  tables: readonly T[],
  include: readonly string[],
  skip: readonly string[],
): T[] {
  const keep = include.map(parseTablePattern);
  const drop = skip.map(parseTablePattern);
  const hit = (patterns: readonly TablePattern[], t: T): boolean =>
    patterns.some((p) => matches(p.schema, t.schema) && matches(p.table, t.table));
  return tables.filter((t) => (keep.length === 0 || hit(keep, t)) && !hit(drop, t));
}
