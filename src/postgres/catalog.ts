/**
 * Catalog reads on a normal (query) connection: server facts, slots, publications, tables and
 * keys. Never called by the decoder; the capture loop calls it at start and when a Relation
 * message names a table it has not seen.
 */
import type pg from 'pg';
import { CdcError } from '../core/errors.ts';
import { parseLsn } from '../protocol/lsn.ts';
import type { Lsn } from '../protocol/messages.ts';
import { quoteIdent, quoteQualified } from './quote.ts';
import { sourceFailure } from './source-errors.ts';

export interface ServerFacts {
  readonly versionNum: number;
  readonly major: number;
  readonly walLevel: string;
  /** wal_sender_timeout in milliseconds; 0 means disabled. */
  readonly walSenderTimeoutMs: number;
}

export async function readServerFacts(client: pg.ClientBase): Promise<ServerFacts> {
  const { rows } = await client.query<{ v: string; wal_level: string; wst: string }>(
    `select current_setting('server_version_num') as v, current_setting('wal_level') as wal_level,
            (select setting from pg_settings where name = 'wal_sender_timeout') as wst`,
  );
  const row = rows[0];
  if (!row) throw new CdcError('SOURCE_QUERY_FAILED', 'could not read server settings');
  const versionNum = Number(row.v);
  return {
    versionNum,
    major: Math.floor(versionNum / 10000),
    walLevel: row.wal_level,
    walSenderTimeoutMs: Number(row.wst),
  };
}

export interface SlotState {
  readonly name: string;
  readonly plugin: string | null;
  readonly slotType: string;
  readonly database: string | null;
  readonly active: boolean;
  readonly activePid: number | null;
  readonly confirmedFlush: Lsn | undefined;
  readonly restartLsn: Lsn | undefined;
  /** PostgreSQL 13+: reserved, extended, unreserved or lost; undefined before 13. */
  readonly walStatus: string | undefined;
  /** PostgreSQL 17+: a failover slot (synchronised to standbys with sync_replication_slots); undefined before 17. */
  readonly failover?: boolean | undefined;
  /** PostgreSQL 17+: a copy a standby's slot sync made of the primary's slot; undefined before 17. */
  readonly synced?: boolean | undefined;
}

export async function readSlot(client: pg.ClientBase, slot: string, major: number): Promise<SlotState | undefined> {
  const walStatus = major >= 13 ? 'wal_status' : 'null::text as wal_status';
  const failover = major >= 17 ? 'failover, synced' : 'null::bool as failover, null::bool as synced';
  const { rows } = await client.query<{
    slot_name: string;
    plugin: string | null;
    slot_type: string;
    database: string | null;
    active: boolean;
    active_pid: number | null;
    confirmed_flush_lsn: string | null;
    restart_lsn: string | null;
    wal_status: string | null;
    failover: boolean | null;
    synced: boolean | null;
  }>(
    `select slot_name, plugin, slot_type, database, active, active_pid, confirmed_flush_lsn::text, ` +
      `restart_lsn::text, ${walStatus}, ${failover}
       from pg_replication_slots where slot_name = $1`,
    [slot],
  );
  const row = rows[0];
  if (!row) return undefined;
  return {
    name: row.slot_name,
    plugin: row.plugin,
    slotType: row.slot_type,
    database: row.database,
    active: row.active,
    activePid: row.active_pid,
    confirmedFlush: row.confirmed_flush_lsn ? parseLsn(row.confirmed_flush_lsn) : undefined,
    restartLsn: row.restart_lsn ? parseLsn(row.restart_lsn) : undefined,
    walStatus: row.wal_status ?? undefined,
    failover: row.failover ?? undefined,
    synced: row.synced ?? undefined,
  };
}

export interface TableRef {
  readonly oid: number;
  readonly schema: string;
  readonly table: string;
  /** 'r' table, 'p' partitioned table. */
  readonly kind: string;
  /** d default, n nothing, f full, i index */
  readonly replicaIdentity: string;
  readonly primaryKey: readonly string[];
}

const TABLE_QUERY =
  `
  select c.oid::int as oid, n.nspname as schema, c.relname as table, c.relkind::text as kind, ` +
  `c.relreplident::text as ident,
         coalesce((select array_agg(a.attname::text order by array_position(i.indkey::int2[], a.attnum))
                     from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey::int2[])
                    where i.indrelid = c.oid and i.indisprimary), '{}') as pk
    from pg_class c join pg_namespace n on n.oid = c.relnamespace`;

interface TableRow {
  oid: number;
  schema: string;
  table: string;
  kind: string;
  ident: string;
  pk: string[];
}

function toRef(row: TableRow): TableRef {
  return {
    oid: row.oid,
    schema: row.schema,
    table: row.table,
    kind: row.kind,
    replicaIdentity: row.ident,
    primaryKey: row.pk,
  };
}

/** Looks up `schema.table` names; every missing one is named in a single TABLE_MISSING error. */
export async function resolveTables(
  client: pg.ClientBase,
  names: readonly { schema: string; table: string }[],
): Promise<TableRef[]> {
  if (names.length === 0) return [];
  const { rows } = await client.query<TableRow>(
    `${TABLE_QUERY} join unnest($1::text[], $2::text[]) as want(s, t) on n.nspname = want.s and c.relname = want.t
      where c.relkind in ('r', 'p')`,
    [names.map((n) => n.schema), names.map((n) => n.table)],
  );
  const found = new Map(rows.map((r) => [`${r.schema}.${r.table}`, r]));
  const missing = names.filter((n) => !found.has(`${n.schema}.${n.table}`)).map((n) => `${n.schema}.${n.table}`);
  if (missing.length > 0) {
    throw new CdcError('TABLE_MISSING', `table${missing.length > 1 ? 's' : ''} not found: ${missing.join(', ')}`, {
      hint: 'check --tables (schema.table, comma separated) and that the user can see them',
    });
  }
  return names.map((n) => toRef(found.get(`${n.schema}.${n.table}`) as TableRow));
}

/** Tables by relation id (for Relation messages naming tables not seen at start). */
export async function tablesByOid(client: pg.ClientBase, oids: readonly number[]): Promise<Map<number, TableRef>> {
  let rows: TableRow[];
  try {
    rows = (await client.query<TableRow>(`${TABLE_QUERY} where c.oid = any($1::oid[])`, [oids])).rows;
  } catch (cause) {
    // A Relation message waits on this lookup: a timeout or a lost connection must say so (retried).
    throw sourceFailure(cause, `looking up relation ${oids.join(', ')} in the catalog`);
  }
  return new Map(rows.map((r) => [r.oid, toRef(r)]));
}

/**
 * Which generated columns pgoutput sends, and so which the snapshot reads too: `stored` with a
 * publication WITH (publish_generated_columns = stored) (PostgreSQL 18+), else `none`. Virtual
 * generated columns (18+) are never published.
 */
export type GeneratedColumns = 'none' | 'stored';

export interface PublicationState {
  readonly exists: boolean;
  readonly allTables: boolean;
  readonly tables: readonly { schema: string; table: string }[];
  readonly generatedColumns: GeneratedColumns;
}

export async function readPublication(client: pg.ClientBase, publication: string): Promise<PublicationState> {
  // pubgencols exists from PostgreSQL 18 ('s' stored, 'n' none); to_jsonb reads it on every version.
  const pub = await client.query<{ puballtables: boolean; gencols: string | null }>(
    `select puballtables, to_jsonb(p) ->> 'pubgencols' as gencols from pg_publication p where pubname = $1`,
    [publication],
  );
  const row = pub.rows[0];
  if (!row) return { exists: false, allTables: false, tables: [], generatedColumns: 'none' };
  const tables = await client.query<{ schemaname: string; tablename: string }>(
    `select schemaname, tablename from pg_publication_tables where pubname = $1 order by 1, 2`,
    [publication],
  );
  return {
    exists: true,
    allTables: row.puballtables,
    tables: tables.rows.map((t) => ({ schema: t.schemaname, table: t.tablename })),
    generatedColumns: row.gencols === 's' ? 'stored' : 'none',
  };
}

/**
 * The publication pgcdc creates. On PostgreSQL 18+ it publishes stored generated columns: without
 * that, events lack them, and UPDATE and DELETE fail on a REPLICA IDENTITY FULL table that has one.
 */
export function createPublicationSql(
  publication: string,
  tables: readonly { schema: string; table: string }[],
  major: number,
): string {
  const list = tables.map((t) => quoteQualified(t.schema, t.table)).join(', ');
  return (
    `CREATE PUBLICATION ` +
    `${quoteIdent(publication)} FOR TABLE ${list}${major >= 18 ? ' WITH (publish_generated_columns = stored)' : ''};`
  );
}

/**
 * Tables among `tables` whose UPDATE and DELETE any publication would break: REPLICA IDENTITY FULL
 * with a virtual generated column, which PostgreSQL 18 cannot publish ("Replica identity must not
 * contain unpublished generated columns"). As `schema.table (column, ...)`.
 */
export async function unpublishableIdentities(
  client: pg.ClientBase,
  tables: readonly TableRef[],
  major: number,
): Promise<string[]> {
  const full = tables.filter((t) => t.replicaIdentity === 'f');
  if (major < 18 || full.length === 0) return [];
  const { rows } = await client.query<{ schema: string; table: string; columns: string[] }>(
    `select n.nspname as schema, c.relname as table, array_agg(a.attname::text order by a.attnum) as columns
       from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
      where a.attrelid = any($1::oid[]) and a.attnum > 0 and not a.attisdropped and a.attgenerated = 'v'
      group by 1, 2 order by 1, 2`,
    [full.map((t) => t.oid)],
  );
  return rows.map((r) => `${r.schema}.${r.table} (${r.columns.join(', ')})`);
}

/**
 * Makes sure the publication exists and covers `tables`. Creates it when missing and allowed (on
 * 18+ publishing stored generated columns), unless that would break the application's writes;
 * otherwise fails with the SQL the user should run. Never alters an existing publication.
 */
export async function ensurePublication(
  client: pg.ClientBase,
  publication: string,
  tables: readonly TableRef[],
  allowCreate: boolean,
  major: number,
): Promise<PublicationState> {
  const state = await readPublication(client, publication);
  if (!state.exists) {
    if (tables.length === 0) {
      throw new CdcError('PUBLICATION_MISSING', `publication ${publication} does not exist and no tables were given`, {
        hint:
          `pass --tables schema.table,... or create it: CREATE PUBLICATION ` +
          `${quoteIdent(publication)} FOR TABLE ...;`,
      });
    }
    const sql = createPublicationSql(publication, tables, major);
    const breaking = await unpublishableIdentities(client, tables, major);
    if (breaking.length > 0) {
      throw new CdcError(
        'PUBLICATION_MISSING',
        `publication ${publication} does not exist, and pgcdc will not create it: publishing ` +
          (`${breaking.join(', ')} would make the application's UPDATEs and DELETEs on ` +
            (`${breaking.length > 1 ? 'them' : 'it'} fail (REPLICA IDENTITY FULL includes virtual generated ` +
              `columns, which PostgreSQL cannot publish)`)),
        {
          hint:
            'give each such table a primary key and REPLICA IDENTITY DEFAULT (or USING INDEX), or leave it ' +
            'out of --tables',
        },
      );
    }
    if (!allowCreate) {
      throw new CdcError('PUBLICATION_MISSING', `publication ${publication} does not exist`, {
        hint: `run as a table owner or superuser: ${sql}`,
      });
    }
    try {
      await client.query(sql);
    } catch (cause) {
      const message = cause instanceof Error ? cause.message : String(cause);
      throw new CdcError(
        'PUBLICATION_MISSING',
        `publication ${publication} does not exist and could not be created (${message})`,
        {
          cause,
          hint: `run as a table owner or superuser: ${sql}`,
        },
      );
    }
    return readPublication(client, publication);
  }
  if (state.allTables) return state;
  const covered = new Set(state.tables.map((t) => `${t.schema}.${t.table}`));
  const missing = tables.filter((t) => !covered.has(`${t.schema}.${t.table}`));
  if (missing.length > 0) {
    const list = missing.map((t) => quoteQualified(t.schema, t.table)).join(', ');
    throw new CdcError(
      'PUBLICATION_MISSING',
      `publication ${publication} does not include ${missing.map((t) => `${t.schema}.${t.table}`).join(', ')}`,
      {
        hint: `run: ALTER PUBLICATION ${quoteIdent(publication)} ADD TABLE ${list};`,
      },
    );
  }
  return state;
}
