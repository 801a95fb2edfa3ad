/**
 * A primary and a physical standby set up for failover, for the failover tests: the standby is built by
 * test/harness/standby.ts (a base backup of the running primary, streaming through a physical slot, with
 * hot_standby_feedback on and a primary_conninfo naming a database). On PostgreSQL 17+ it is set up as the
 * manual asks for failover slots: `sync_replication_slots = on` on the standby, and the primary's
 * `synchronized_standby_slots` naming the standby's physical slot (so a logical walsender sends nothing the
 * standby has not received). On 16 and older the same pair has no slot synchronisation: what a failover then
 * does to a logical slot is what the tests show.
 */
import pg from 'pg';
import type { EmbeddedCluster } from '../../src/embedded/cluster.ts';
import { eventually, startCluster } from './pg.ts';
import { startStandby, type Standby } from './standby.ts';

export interface FailoverPair {
  readonly major: number;
  readonly primary: EmbeddedCluster;
  readonly standby: Standby;
  /** Whether the standby synchronises failover slots (PostgreSQL 17+). */
  readonly syncsSlots: boolean;
  /**
   * Resolves with the standby's copy of logical slot `slot` once it is synchronised and persistent (17+:
   * `synced` and not `temporary`) and its confirmed position is at least `atLeast` (an LSN text), if given.
   */
  slotSynced(slot: string, atLeast?: string): Promise<{ confirmed: string }>;
  /** Stops the primary at once (no shutdown checkpoint, no last WAL sent) and promotes the standby. */
  failover(): Promise<void>;
  /** Stops the standby's streaming (primary_conninfo emptied): it keeps what it has and receives nothing more. */
  cutStandby(): Promise<void>;
}

async function query<R extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query<R>(sql, params)).rows;
  } finally {
    await client.end().catch(() => undefined);
  }
}

export interface FailoverOptions {
  /**
   * Set synchronized_standby_slots on a 17+ primary (default true). Without it the primary may send pgcdc changes
   * the standby has not received: the case a promotion then loses.
   */
  readonly synchronizedStandbySlots?: boolean;
}

/** Starts a primary of `major` (wal_level logical) and its standby, both stopped after the test file. */
export async function startFailoverPair(major: number, options: FailoverOptions = {}): Promise<FailoverPair> {
  const primary = await startCluster({ major });
  const syncsSlots = major >= 17;
  const standby = await startStandby(primary, {
    database: 'postgres',
    settings: syncsSlots ? { sync_replication_slots: 'on' } : {},
  });
  if (syncsSlots && options.synchronizedStandbySlots !== false) {
    // Set after the standby exists: the named physical slot must be there. ALTER SYSTEM takes no parameters:
    // the slot name is the harness's own (standby_<hex>), quoted as a literal.
    await query(
      primary.url('postgres'),
      `alter system set synchronized_standby_slots = '${standby.slot.replace(/'/g, "''")}'`,
    );
    await query(primary.url('postgres'), 'select pg_reload_conf()');
    await eventually(async () => {
      const rows = await query<{ v: string }>(
        primary.url('postgres'),
        "select current_setting('synchronized_standby_slots') as v",
      );
      return rows[0]?.v === standby.slot ? true : undefined;
    }, 'synchronized_standby_slots to take effect');
  }
  return {
    major,
    primary,
    standby,
    syncsSlots,
    slotSynced: (slot, atLeast) =>
      eventually(
        async () => {
          const rows = await query<{ confirmed: string | null; ok: boolean }>(
            standby.cluster.url('postgres'),
            `select confirmed_flush_lsn::text as confirmed,
                    synced and not temporary and ($2::pg_lsn is null or confirmed_flush_lsn >= $2::pg_lsn) as ok
               from pg_replication_slots where slot_name = $1`,
            [slot, atLeast ?? null],
          );
          const row = rows[0];
          return row?.ok && row.confirmed ? { confirmed: row.confirmed } : undefined;
        },
        `slot ${slot} synchronised to the standby${atLeast ? ` up to ${atLeast}` : ''}`,
        120_000,
      ),
    cutStandby: async () => {
      await query(standby.cluster.url('postgres'), `alter system set primary_conninfo = ''`);
      await query(standby.cluster.url('postgres'), 'select pg_reload_conf()');
      await eventually(async () => {
        const rows = await query(
          primary.url('postgres'),
          `select 1 from pg_replication_slots where slot_name = $1 and active`,
          [standby.slot],
        );
        return rows.length === 0 ? true : undefined;
      }, 'the standby to stop streaming');
    },
    failover: async () => {
      await primary.stop('immediate');
      await query(standby.cluster.url('postgres'), 'select pg_promote(true, 60)');
      await eventually(async () => {
        const rows = await query<{ r: boolean }>(standby.cluster.url('postgres'), 'select pg_is_in_recovery() as r');
        return rows[0]?.r === false ? true : undefined;
      }, 'the standby to be promoted');
    },
  };
}
