/**
 * Reads everything the preflight rules judge, on an ordinary (query) connection. Read-only: only
 * SELECTs on catalogs and settings, never a lock beyond what a catalog read takes, so `pgcdc check`
 * is safe against production. Works on PostgreSQL 10 to 18 (newer columns are read only where
 * the server has them).
 */
import type pg from 'pg';
import { readSlot, type SlotState } from '../postgres/catalog.ts';

export interface ServerSettings {
  readonly versionNum: number;
  readonly major: number;
  readonly walLevel: string;
  /** `on`/`off` on RDS and Aurora, undefined elsewhere (the parameter does not exist). */
  readonly rdsLogicalReplication: string | undefined;
  readonly maxReplicationSlots: number;
  readonly maxWalSenders: number;
  readonly usedSlots: number;
  readonly activeSenders: number;
  readonly walSenderTimeoutMs: number;
  readonly inRecovery: boolean;
  readonly hotStandbyFeedback: boolean;
}

export interface RoleFacts {
  readonly name: string;
  readonly superuser: boolean;
  readonly replication: boolean;
  /** Member of rds_replication (RDS, Aurora); undefined when the role does not exist here. */
  readonly rdsReplication: boolean | undefined;
  readonly canCreateInDatabase: boolean;
}

export interface TableFacts {
  readonly oid: number;
  readonly schema: string;
  readonly table: string;
  /** 'r' table, 'p' partitioned table. */
  readonly kind: string;
  readonly isPartition: boolean;
  /** d default, n nothing, f full, i index. */
  readonly replicaIdentity: string;
  readonly primaryKey: readonly string[];
  readonly canSelect: boolean;
  /** INSERT and UPDATE: needed on the signal table only. */
  readonly canWrite: boolean;
  readonly owned: boolean;
  /** For partitioned tables: their leaf partitions, as `schema.table` keys. */
  readonly leaves: readonly string[];
  /** Stored generated columns (PostgreSQL 12+), in column order; absent or empty when none. */
  readonly storedGenerated?: readonly string[];
  /** Virtual generated columns (PostgreSQL 18+), never published; absent or empty when none. */
  readonly virtualGenerated?: readonly string[];
}

export interface PublicationFacts {
  readonly exists: boolean;
  readonly allTables: boolean;
  /** publish_via_partition_root (PostgreSQL 13+); false before. */
  readonly viaRoot: boolean;
  readonly publishesUpdateOrDelete: boolean;
  /** `schema.table` keys as pg_publication_tables lists them. */
  readonly tables: ReadonlySet<string>;
  /** publish_generated_columns (PostgreSQL 18+): `stored` or `none`; absent before 18. */
  readonly generatedColumns?: 'none' | 'stored' | undefined;
}

export interface TlsFacts {
  readonly inUse: boolean;
  readonly version: string | undefined;
}

export interface SlotFacts extends SlotState {
  /** Bytes that can still be written before the slot is at risk (13+, with max_slot_wal_keep_size). */
  readonly safeWalSize: number | undefined;
}

export function tableKey(t: { schema: string; table: string }): string {
  return JSON.stringify([t.schema, t.table]);
}

export async function readSettings(client: pg.ClientBase): Promise<ServerSettings> {
  const { rows } = await client.query<{ name: string; setting: string }>(
    `select name, setting from pg_settings
      where name in ('server_version_num', 'wal_level', 'rds.logical_replication', 'max_replication_slots', ` +
      `'max_wal_senders',
                     'wal_sender_timeout', 'hot_standby_feedback')`,
  );
  const s = new Map(rows.map((r) => [r.name, r.setting]));
  // current_setting(..., true) as well as pg_settings: it also sees a custom (placeholder) setting
  // of that name, which pg_settings hides, and is NULL where the parameter does not exist.
  const state = await client.query<{ slots: number; senders: number; recovery: boolean; rds: string | null }>(
    `select (select count(*) from pg_replication_slots)::int as slots, (select count(*) from ` +
      `pg_stat_replication)::int as senders,
            pg_is_in_recovery() as recovery, current_setting('rds.logical_replication', true) as rds`,
  );
  const versionNum = Number(s.get('server_version_num'));
  return {
    versionNum,
    major: Math.floor(versionNum / 10000),
    walLevel: s.get('wal_level') ?? 'unknown',
    rdsLogicalReplication: s.get('rds.logical_replication') ?? state.rows[0]?.rds ?? undefined,
    maxReplicationSlots: Number(s.get('max_replication_slots') ?? 0),
    maxWalSenders: Number(s.get('max_wal_senders') ?? 0),
    usedSlots: state.rows[0]?.slots ?? 0,
    activeSenders: state.rows[0]?.senders ?? 0,
    walSenderTimeoutMs: Number(s.get('wal_sender_timeout') ?? 60_000),
    inRecovery: state.rows[0]?.recovery ?? false,
    hotStandbyFeedback: s.get('hot_standby_feedback') === 'on',
  };
}

export async function readRole(client: pg.ClientBase): Promise<RoleFacts> {
  const { rows } = await client.query<{
    name: string;
    superuser: boolean;
    replication: boolean;
    rds: boolean | null;
    create_db: boolean;
  }>(
    `select r.rolname as name, r.rolsuper as superuser, r.rolreplication as replication,
            (select pg_has_role(current_user, x.oid, 'member') from pg_roles x where x.rolname = ` +
      `'rds_replication') as rds,
            has_database_privilege(current_database(), 'CREATE') as create_db
       from pg_roles r where r.rolname = current_user`,
  );
  const row = rows[0];
  return {
    name: row?.name ?? '',
    superuser: row?.superuser ?? false,
    replication: row?.replication ?? false,
    rdsReplication: row?.rds ?? undefined,
    canCreateInDatabase: row?.create_db ?? false,
  };
}

export async function readTls(client: pg.ClientBase): Promise<TlsFacts> {
  const { rows } = await client.query<{ ssl: boolean; version: string | null }>(
    `select ssl, version from pg_stat_ssl where pid = pg_backend_pid()`,
  );
  return { inUse: rows[0]?.ssl ?? false, version: rows[0]?.version ?? undefined };
}

/** Facts for the named tables; names not found are simply absent from the result. */
export async function readTables(
  client: pg.ClientBase,
  names: readonly { schema: string; table: string }[],
): Promise<TableFacts[]> {
  if (names.length === 0) return [];
  const { rows } = await client.query<{
    oid: number;
    schema: string;
    table: string;
    kind: string;
    part: boolean;
    ident: string;
    pk: string[];
    can_select: boolean;
    can_write: boolean;
    owned: boolean;
    leaves: string[][] | null;
    stored_generated: string[];
    virtual_generated: string[];
  }>(
    `select c.oid::int as oid, n.nspname as schema, c.relname as table, c.relkind::text as kind, ` +
      `c.relispartition as part,
            c.relreplident::text as ident,
            coalesce((select array_agg(a.attname::text order by a.attnum)
                        from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = ` +
      `any(i.indkey::int2[])
                       where i.indrelid = c.oid and i.indisprimary), '{}') as pk,
            has_schema_privilege(n.oid, 'USAGE') and has_table_privilege(c.oid, 'SELECT') as can_select,
            has_table_privilege(c.oid, 'INSERT') and has_table_privilege(c.oid, 'UPDATE') as can_write,
            pg_has_role(c.relowner, 'USAGE') as owned,
            (with recursive down(relid) as (
               select i.inhrelid from pg_inherits i where i.inhparent = c.oid
               union all select i.inhrelid from pg_inherits i join down on i.inhparent = down.relid)
             select array_agg(array[ln.nspname::text, lc.relname::text]) from down join pg_class lc on lc.oid ` +
      `= down.relid
               join pg_namespace ln on ln.oid = lc.relnamespace where lc.relkind = 'r') as leaves,
            ${generatedColumnsOf('s')} as stored_generated, ${generatedColumnsOf('v')} as virtual_generated
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
       join unnest($1::text[], $2::text[]) as want(s, t) on n.nspname = want.s and c.relname = want.t
      where c.relkind in ('r', 'p')
      order by 2, 3`,
    [names.map((n) => n.schema), names.map((n) => n.table)],
  );
  return rows.map((r) => ({
    oid: r.oid,
    schema: r.schema,
    table: r.table,
    kind: r.kind,
    isPartition: r.part,
    replicaIdentity: r.ident,
    primaryKey: r.pk,
    canSelect: r.can_select,
    canWrite: r.can_write,
    owned: r.owned,
    leaves: (r.leaves ?? []).map(([schema = '', table = '']) => tableKey({ schema, table })),
    storedGenerated: r.stored_generated,
    virtualGenerated: r.virtual_generated,
  }));
}

/**
 * The names of table `c`'s generated columns of one kind ('s' stored, 'v' virtual) as a text[].
 * attgenerated exists from PostgreSQL 12 ('v' from 18); to_jsonb reads it on every version.
 */
function generatedColumnsOf(kind: 's' | 'v'): string {
  return (
    `coalesce((select array_agg(a.attname::text order by a.attnum) from pg_attribute a
                     where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped and to_jsonb(a) ->> ` +
    `'attgenerated' = '${kind}'), '{}')`
  );
}

export async function readPublicationFacts(
  client: pg.ClientBase,
  publication: string,
  major: number,
): Promise<PublicationFacts> {
  const viaRoot = major >= 13 ? 'pubviaroot' : 'false';
  const pub = await client.query<{ all: boolean; via_root: boolean; upd: boolean; gencols: string | null }>(
    `select puballtables as all, ` +
      `${viaRoot} as via_root, pubupdate or pubdelete as upd, to_jsonb(p) ->> 'pubgencols' as gencols
       from pg_publication p where pubname = $1`,
    [publication],
  );
  const row = pub.rows[0];
  if (!row)
    return { exists: false, allTables: false, viaRoot: false, publishesUpdateOrDelete: true, tables: new Set() };
  const tables = await client.query<{ schemaname: string; tablename: string }>(
    `select schemaname, tablename from pg_publication_tables where pubname = $1`,
    [publication],
  );
  return {
    exists: true,
    allTables: row.all,
    viaRoot: row.via_root,
    publishesUpdateOrDelete: row.upd,
    generatedColumns: row.gencols === null ? undefined : row.gencols === 's' ? 'stored' : 'none',
    tables: new Set(tables.rows.map((t) => tableKey({ schema: t.schemaname, table: t.tablename }))),
  };
}

export async function readSlotFacts(
  client: pg.ClientBase,
  slot: string,
  major: number,
): Promise<SlotFacts | undefined> {
  const state = await readSlot(client, slot, major);
  if (!state) return undefined;
  let safeWalSize: number | undefined;
  if (major >= 13) {
    const { rows } = await client.query<{ safe: string | null }>(
      `select safe_wal_size::text as safe from pg_replication_slots where slot_name = $1`,
      [slot],
    );
    safeWalSize = rows[0]?.safe == null ? undefined : Number(rows[0].safe);
  }
  return { ...state, safeWalSize };
}
