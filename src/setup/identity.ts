/**
 * Tables that would break the application once published: PostgreSQL refuses an UPDATE or DELETE
 * on a table that is in a publication publishing updates/deletes when the table has no replica
 * identity ("cannot update table ... because it does not have a replica identity and publishes
 * updates"). That is a table without a primary key and REPLICA IDENTITY DEFAULT, one with
 * REPLICA IDENTITY NOTHING, or one whose replica identity index is gone. setup refuses to publish
 * them unless it also makes them REPLICA IDENTITY FULL (`--replica-identity-full`).
 */
import type pg from 'pg';
import { CdcError } from '../core/errors.ts';

/** A table (a leaf: partitions are checked, not their partitioned parent) without a replica identity. */
export interface KeylessTable {
  readonly schema: string;
  readonly table: string;
  /** Why: 'no-key' (DEFAULT without a primary key), 'nothing' (REPLICA IDENTITY NOTHING), 'index-gone'. */
  readonly reason: 'no-key' | 'nothing' | 'index-gone';
}

const REASONS: Readonly<Record<KeylessTable['reason'], string>> = {
  'no-key': 'no primary key and REPLICA IDENTITY DEFAULT',
  nothing: 'REPLICA IDENTITY NOTHING',
  'index-gone': 'a REPLICA IDENTITY USING INDEX whose index is gone',
};

/** The identity rule on a pg_class row `c`: which leaf tables have no replica identity. */
const WITHOUT_IDENTITY =
  `c.relkind = 'r' and (c.relreplident = 'n'
     or (c.relreplident = 'd' and not exists (select 1 from pg_index i where i.indrelid = c.oid and i.indisprimary))
     or (c.relreplident = 'i' and not exists (select 1 from pg_index i where i.indrelid = c.oid and ` +
  `i.indisreplident)))`;

const REASON_OF = `case c.relreplident when 'n' then 'nothing' when 'i' then 'index-gone' else 'no-key' end`;

/**
 * The tables among `tables` (and the partitions of partitioned ones, at any depth) that have no
 * replica identity; for 'all' (a FOR ALL TABLES publication), every ordinary permanent table.
 */
export async function readKeylessTables(
  client: pg.ClientBase,
  tables: readonly { schema: string; table: string }[] | 'all',
): Promise<KeylessTable[]> {
  if (tables === 'all') {
    const { rows } = await client.query<KeylessTable>(
      `select n.nspname as schema, c.relname as table, ${REASON_OF} as reason
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where ${WITHOUT_IDENTITY} and c.relpersistence = 'p'
          and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_toast%' and ` +
        `n.nspname not like 'pg\\_temp%'
        order by 1, 2`,
    );
    return rows;
  }
  if (tables.length === 0) return [];
  const { rows } = await client.query<KeylessTable>(
    `with recursive picked(oid) as (
       select c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace
         join unnest($1::text[], $2::text[]) as want(s, t) on n.nspname = want.s and c.relname = want.t
        where c.relkind in ('r', 'p')
       union
       select i.inhrelid from pg_inherits i join picked on i.inhparent = picked.oid)
     select n.nspname as schema, c.relname as table, ${REASON_OF} as reason
       from picked join pg_class c on c.oid = picked.oid join pg_namespace n on n.oid = c.relnamespace
      where ${WITHOUT_IDENTITY}
      order by 1, 2`,
    [tables.map((t) => t.schema), tables.map((t) => t.table)],
  );
  return rows;
}

/** Why one table has no replica identity, as a phrase. */
export function keylessReason(t: KeylessTable): string {
  return REASONS[t.reason];
}

/** The table and why it cannot be published as it is, for a message. */
export function describeKeyless(t: KeylessTable): string {
  return `${t.schema}.${t.table} (${REASONS[t.reason]})`;
}

/**
 * Throws (exit 2) when `keyless` is not empty and `--replica-identity-full` was not given: the
 * refusal names the tables, says why, and what to do. Nothing has been changed at that point.
 */
export function refuseKeyless(
  keyless: readonly KeylessTable[],
  replicaIdentityFull: boolean,
  allTables: boolean,
): void {
  if (keyless.length === 0 || replicaIdentityFull) return;
  const shown = keyless.slice(0, 10).map(describeKeyless).join(', ');
  const more = keyless.length > 10 ? ` and ${keyless.length - 10} more` : '';
  const leaveOut = allTables
    ? 'publish a list of tables instead of --all-tables (--tables, --exclude-tables)'
    : 'leave them out with --exclude-tables';
  throw new CdcError(
    'USAGE',
    `setup refuses to publish ` +
      `${keyless.length === 1 ? 'a table' : `${keyless.length} tables`} without a replica identity: ${shown}${more}; ` +
      ('once published, the application\'s own UPDATE and DELETE on them would fail ("does not have a replica ' +
        'identity and publishes updates")'),
    {
      hint:
        `pass --replica-identity-full to make them REPLICA IDENTITY FULL as part of the setup, give them a ` +
        `primary key, or ${leaveOut}`,
    },
  );
}
