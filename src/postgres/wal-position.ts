/**
 * The server's WAL position now, as the target of `pgcdc drain`: `pg_current_wal_lsn()` on a
 * primary, `pg_last_wal_replay_lsn()` on a standby (what it has replayed, so what its walsender can
 * decode). PostgreSQL 10+ names only: 10 is pgcdc's minimum.
 */
import type pg from 'pg';

export interface WalPosition {
  /** The position as PostgreSQL prints a pg_lsn ("0/16B3748"). */
  readonly lsn: string;
  /** The server is a standby (in recovery): `lsn` is its replay position. */
  readonly standby: boolean;
}

/** The SQL reading the position; one row `{ lsn, standby }`. Pure, for tests. */
export const WAL_POSITION_SQL =
  `select case when pg_is_in_recovery() then pg_last_wal_replay_lsn() else pg_current_wal_lsn() end::text as lsn, ` +
  `pg_is_in_recovery() as standby`;

/** Reads the server's WAL position (see the file's comment). */
export async function readWalPosition(client: pg.ClientBase): Promise<WalPosition> {
  const { rows } = await client.query<{ lsn: string | null; standby: boolean }>(WAL_POSITION_SQL);
  const row = rows[0];
  // A standby that has replayed nothing yet has no replay position: nothing to drain up to.
  return { lsn: row?.lsn ?? '0/0', standby: row?.standby ?? false };
}

/** The slot's confirmed_flush_lsn and whether a process holds it; undefined when it does not exist. */
export async function readSlotConfirmed(
  client: pg.ClientBase,
  slot: string,
): Promise<
  | { readonly confirmed: string | undefined; readonly active: boolean; readonly activePid: number | undefined }
  | undefined
> {
  const { rows } = await client.query<{ confirmed: string | null; active: boolean; pid: number | null }>(
    `select confirmed_flush_lsn::text as confirmed, active, active_pid as pid from pg_replication_slots ` +
      `where slot_name = $1`,
    [slot],
  );
  const row = rows[0];
  if (row === undefined) return undefined;
  return { confirmed: row.confirmed ?? undefined, active: row.active, activePid: row.pid ?? undefined };
}
