/**
 * `slot-inactive-retaining-wal`: logical pgoutput slots that no process reads while they keep WAL on
 * the server. An abandoned slot (a capture stopped for good, a test, an old pgcdc) keeps every WAL
 * segment since its restart_lsn until the disk fills: the failure the seeds warn about most. `pgcdc
 * check` names each such slot holding more than the retained-WAL warning threshold
 * (`alerts.retainedWalBytes.warning`, 2 GiB by default) and how to fix it.
 */
import type pg from 'pg';
import { quoteLiteral } from '../postgres/quote.ts';
import type { Problem } from './problem.ts';
import { problem } from './rule-input.ts';

export interface InactiveSlot {
  readonly name: string;
  readonly database: string | null;
  /** The server's WAL position (a standby's replay position) minus the slot's restart_lsn, bytes. */
  readonly retainedBytes: number;
}

/** Inactive logical slots of the pgoutput plugin, with the WAL each keeps. */
export async function readInactiveSlots(client: pg.ClientBase): Promise<InactiveSlot[]> {
  const { rows } = await client.query<{ name: string; database: string | null; retained: string }>(
    `select slot_name as name, database,
            pg_wal_lsn_diff(case when pg_is_in_recovery() then pg_last_wal_replay_lsn()
                                 else pg_current_wal_lsn() end, restart_lsn)::text as retained
       from pg_replication_slots
      where slot_type = 'logical' and plugin = 'pgoutput' and not active and restart_lsn is not null
      order by 1`,
  );
  return rows.map((r) => ({ name: r.name, database: r.database, retainedBytes: Math.max(0, Number(r.retained)) }));
}

function size(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]} (${bytes} bytes)`;
}

/** One warning per inactive slot retaining more than `thresholdBytes`. Pure. */
export function retainedWalRules(slots: readonly InactiveSlot[] | undefined, thresholdBytes: number): Problem[] {
  return (slots ?? [])
    .filter((s) => s.retainedBytes > thresholdBytes)
    .map((s) =>
      problem(
        'warning',
        'slot-inactive-retaining-wal',
        `replication slot ${s.name}${s.database === null ? '' : ` (database ${s.database})`} is inactive and ` +
          `retains ${size(s.retainedBytes)} of WAL, more than ${size(thresholdBytes)}: the server keeps it until ` +
          'the slot is read or dropped, and may fill its disk',
        `resume pgcdc on it (pgcdc run --slot ${s.name}), or if it is no longer wanted remove it: pgcdc teardown ` +
          `--slot ${s.name} (or SELECT pg_drop_replication_slot(${quoteLiteral(s.name)});)`,
      ),
    );
}
