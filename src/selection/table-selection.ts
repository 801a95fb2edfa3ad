/**
 * The capture's table selection as a value: computed once at start from `--tables`,
 * `--tables-file` and `--exclude-tables` (or, without include patterns, the publication's tables
 * minus the exclusions), then passed to everything that needs it: the preflight, the initial
 * snapshot, initial_only, streaming (changes of other tables are dropped), `pgcdc snapshot`
 * requests and execute-snapshot signals. The config is never rewritten with it.
 */
import { readFile } from 'node:fs/promises';
import type pg from 'pg';
import type { Config } from '../config.ts';
import { CdcError } from '../core/errors.ts';
import { readPublication, resolveTables, type TableRef } from '../postgres/catalog.ts';
import {
  parseTablePattern,
  patternsFromCsv,
  selectionMatcher,
  selectTables,
  type TableName,
  type TablePattern,
} from './patterns.ts';

export interface TableSelection {
  /** The selected tables as found at start, sorted by schema and table: the snapshots read these. */
  readonly tables: readonly TableRef[];
  /** No include pattern was given: the publication's tables (minus exclusions) are captured. */
  readonly fromPublication: boolean;
  /** Include patterns that matched no table (run refuses to start; check reports them). */
  readonly unmatched: readonly string[];
  /**
   * Whether the changes of a relation met in the stream are captured: its own name and, for a
   * partition, its partitioned root are matched against the patterns (selection/patterns.ts).
   */
  readonly captures: (name: TableName, root?: TableName) => boolean;
}

/** The include and exclude patterns of a config (reads `tablesFile`). */
export async function selectionPatterns(config: Config): Promise<{ include: TablePattern[]; exclude: TablePattern[] }> {
  const include = config.tables.map(parseTablePattern);
  if (config.tablesFile !== undefined) {
    let text: string;
    try {
      text = await readFile(config.tablesFile, 'utf8');
    } catch (cause) {
      throw new CdcError('CONFIG_INVALID', `cannot read tables file ${config.tablesFile}`, {
        cause,
        hint: 'check --tables-file',
      });
    }
    include.push(...patternsFromCsv(text, config.tablesFile));
  }
  return { include, exclude: config.excludeTables.map(parseTablePattern) };
}

const keyOf = (t: TableName): string => JSON.stringify([t.schema, t.table]);

/** `schema.table` for people. */
export const displayName = (t: TableName): string => `${t.schema}.${t.table}`;

/** The partitioned root of each of `names` that is a partition, by keyOf. */
export async function partitionRoots(
  client: pg.ClientBase,
  names: readonly TableName[],
): Promise<Map<string, TableName>> {
  if (names.length === 0) return new Map();
  const { rows } = await client.query<{ schema: string; table: string; root_schema: string; root_table: string }>(
    `with recursive want as (
       select c.oid, w.s, w.t from unnest($1::text[], $2::text[]) as w(s, t)
         join pg_namespace n on n.nspname = w.s join pg_class c on c.relnamespace = n.oid and c.relname = w.t
        where c.relispartition),
     up(leaf, relid, depth) as (
       select oid, oid, 0 from want
       union all
       select up.leaf, i.inhparent, up.depth + 1 from pg_inherits i join up on i.inhrelid = up.relid
         join pg_class p on p.oid = i.inhparent and p.relkind = 'p')
     select distinct on (up.leaf) want.s as schema, want.t as table, rn.nspname as root_schema, rc.relname as root_table
       from up join want on want.oid = up.leaf join pg_class rc on rc.oid = up.relid join pg_namespace rn on ` +
      `rn.oid = rc.relnamespace
      where up.depth > 0
      order by up.leaf, up.depth desc`,
    [names.map((n) => n.schema), names.map((n) => n.table)],
  );
  return new Map(rows.map((r) => [keyOf(r), { schema: r.root_schema, table: r.root_table }]));
}

/**
 * Computes the selection on a query connection. Patterns that match nothing are returned in
 * `unmatched`, not thrown; a bad pattern or an unreadable tables file throws CONFIG_INVALID.
 */
export async function resolveSelection(client: pg.ClientBase, config: Config): Promise<TableSelection> {
  const { include, exclude } = await selectionPatterns(config);
  const captures = selectionMatcher(include, exclude);
  const fromPublication = include.length === 0;
  let candidates: readonly TableName[];
  let unmatched: readonly string[] = [];
  if (fromPublication) candidates = (await readPublication(client, config.publication)).tables;
  else {
    const selected = selectTables(await listCatalogTables(client), include, exclude);
    candidates = selected.tables;
    unmatched = selected.unmatched;
  }
  const roots = await partitionRoots(client, candidates);
  const names = candidates.filter((t) => captures(t, roots.get(keyOf(t))));
  return { tables: await resolveTables(client, names), fromPublication, unmatched, captures };
}

/** Refuses a selection with patterns that matched nothing: bad input (exit 2), one line naming each. */
export function requireMatched(selection: TableSelection): void {
  const { unmatched } = selection;
  if (unmatched.length === 0) return;
  throw new CdcError('TABLE_MISSING', `table${unmatched.length > 1 ? 's' : ''} not found: ${unmatched.join(', ')}`, {
    hint: 'check --tables/--tables-file (schema.table or schema.*, case-sensitive) and that the user can see them',
  });
}

/** The names among `wanted` that are not among the selection's tables (requests and signals). */
export function uncaptured(selection: TableSelection, wanted: readonly TableName[]): TableName[] {
  const known = new Set(selection.tables.map(keyOf));
  return wanted.filter((t) => !known.has(keyOf(t)));
}

/** Most names listed in a message about the captured tables. */
const LISTED = 20;

/** The selection's tables for a message: `public.a, public.b` (at most 20, then how many more). */
export function capturedList(selection: TableSelection): string {
  const names = selection.tables.map(displayName);
  if (names.length === 0) return 'no table';
  return `${names.slice(0, LISTED).join(', ')}${names.length > LISTED ? ` and ${names.length - LISTED} more` : ''}`;
}

/** For messages: the names among `wanted` that are not selected, and what is; undefined when all are. */
export function uncapturedNames(
  selection: TableSelection,
  wanted: readonly TableName[],
): { names: string; captured: string } | undefined {
  const outside = uncaptured(selection, wanted);
  return outside.length === 0
    ? undefined
    : { names: outside.map(displayName).join(', '), captured: capturedList(selection) };
}

/** Every ordinary and partitioned table outside the system schemas (for pattern matching). */
export async function listCatalogTables(
  client: pg.ClientBase,
): Promise<{ schema: string; table: string; isPartition: boolean }[]> {
  const { rows } = await client.query<{ schema: string; table: string; part: boolean }>(
    `select n.nspname as schema, c.relname as table, c.relispartition as part
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname ` +
      `not like 'pg\\_toast%'
        and n.nspname not like 'pg\\_temp%'
      order by 1, 2`,
  );
  return rows.map((r) => ({ schema: r.schema, table: r.table, isPartition: r.part }));
}
