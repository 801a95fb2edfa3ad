/**
 * Which tables pgcdc itself created: `pgcdc setup` marks the signal and heartbeat tables it creates
 * with a comment (`COMMENT ON TABLE ... IS 'created by pgcdc setup ...'`), and `pgcdc teardown`
 * drops only tables that carry it. A user's table of the same name and shape, which setup found in
 * place and left alone, has no such comment and is never dropped.
 *
 * The comment names the publication the table was created for, so the teardown of one capture never
 * drops another capture's tables in the same database.
 */
import type pg from 'pg';

/** The start of the comment: what `findOwnTables` looks for. */
export const OWN_TABLE_MARK = 'created by pgcdc setup';

export type OwnTableKind = 'signal' | 'heartbeat';

export interface OwnTable {
  readonly schema: string;
  readonly table: string;
  readonly kind: OwnTableKind;
  readonly publication: string;
}

/** The comment `pgcdc setup` puts on a table it creates. Pure. */
export function ownTableComment(kind: OwnTableKind, publication: string): string {
  return `${OWN_TABLE_MARK}: the ${kind} table of publication ${JSON.stringify(publication)}; pgcdc teardown drops it`;
}

/** The kind and publication a comment names, when `ownTableComment` wrote it; else undefined. Pure. */
export function parseOwnTableComment(
  comment: string | null | undefined,
): { kind: OwnTableKind; publication: string } | undefined {
  if (comment === null || comment === undefined) return undefined;
  const match = /^created by pgcdc setup: the (signal|heartbeat) table of publication ("(?:[^"\\]|\\.)*"); /.exec(
    comment,
  );
  if (match === null) return undefined;
  try {
    const publication: unknown = JSON.parse(match[2] ?? '');
    if (typeof publication !== 'string') return undefined;
    return { kind: match[1] as OwnTableKind, publication };
  } catch {
    return undefined;
  }
}

/** The tables `pgcdc setup` created for `publication` (tables whose comment says so). */
export async function findOwnTables(client: pg.ClientBase, publication: string): Promise<OwnTable[]> {
  const { rows } = await client.query<{ schema: string; table: string; comment: string }>(
    `select n.nspname as schema, c.relname as table, d.description as comment
       from pg_class c
       join pg_namespace n on n.oid = c.relnamespace
       join pg_description d on d.objoid = c.oid and d.classoid = 'pg_class'::regclass and d.objsubid = 0
      where c.relkind in ('r', 'p') and d.description like $1
      order by 1, 2`,
    [`${OWN_TABLE_MARK}%`],
  );
  const out: OwnTable[] = [];
  for (const row of rows) {
    const parsed = parseOwnTableComment(row.comment);
    if (parsed !== undefined && parsed.publication === publication)
      out.push({ schema: row.schema, table: row.table, ...parsed });
  }
  return out;
}
