/**
 * One sample of a slot and the server's WAL (health/types.ts SlotSample), read-only, on a regular
 * (non-replication) connection: `pg_replication_slots`, `pg_current_wal_lsn()` (on a standby
 * `pg_last_wal_replay_lsn()`) and `max_slot_wal_keep_size`. Byte distances are computed by the
 * server (`pg_wal_lsn_diff`). Works on PostgreSQL 10 to 18: `wal_status`, `safe_wal_size` and
 * `max_slot_wal_keep_size` exist from 13 and are read only there.
 *
 * lagSeconds: seconds the oldest change not yet confirmed has been waiting, bounded from above by
 * what is known: the commit time of the last transaction made durable (`lastCommitAt`, from the
 * engine's `checkpoint-stored` events or the run file) and, for a running monitor, the last moment
 * at which the server's WAL end was at or before the confirmed position (`WalHistory`): every change
 * still unconfirmed committed after both. 0 when the capture has confirmed everything (lagBytes 0);
 * undefined when neither moment is known, or the slot is missing.
 */
import type pg from 'pg';
import type { SlotSample, WalStatus } from './types.ts';

/** Server facts that do not change between samples of one connection. */
interface ServerFacts {
  readonly versionNum: number;
  readonly standby: boolean;
}

interface SlotRow {
  active: boolean;
  active_pid: number | null;
  wal_status: string | null;
  safe_wal_size: string | null;
  confirmed_flush_lsn: string | null;
  restart_lsn: string | null;
  lag: string | null;
  retained: string | null;
}

const WAL_STATUSES: ReadonlySet<string> = new Set(['reserved', 'extended', 'unreserved', 'lost']);

/** The LSN "X/Y" as a bigint, for comparisons kept on the client (history only). */
function lsnBig(text: string): bigint {
  const [hi, lo] = text.split('/');
  return (BigInt(`0x${hi ?? '0'}`) << 32n) | BigInt(`0x${lo ?? '0'}`);
}

/**
 * The server's WAL end over the last samples of a running monitor: when the confirmed position
 * reaches a past sample's WAL end, everything written before that sample was confirmed.
 */
export class WalHistory {
  private readonly entries: { at: number; lsn: bigint }[] = [];

  constructor(private readonly keep = 720) {}

  record(at: number, currentLsn: string): void {
    this.entries.push({ at, lsn: lsnBig(currentLsn) });
    if (this.entries.length > this.keep) this.entries.shift();
  }

  /** The last sample time whose WAL end the confirmed position covers, or undefined. */
  caughtUpAt(confirmedFlushLsn: string): number | undefined {
    const confirmed = lsnBig(confirmedFlushLsn);
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const entry = this.entries[i];
      if (entry !== undefined && entry.lsn <= confirmed) return entry.at;
    }
    return undefined;
  }
}

/** What is known about the moments behind lagSeconds (see the top of this file). */
export interface LagClock {
  /** Commit time (Unix ms) of the last transaction made durable. */
  readonly lastCommitAt?: number | undefined;
  /** The running monitor's samples of the WAL end. */
  readonly history?: WalHistory | undefined;
  readonly now?: () => number;
}

/** lagSeconds by the rule at the top of this file. */
export function lagSecondsOf(
  now: number,
  lagBytes: number | undefined,
  lastCommitAt: number | undefined,
  caughtUpAt: number | undefined,
): number | undefined {
  if (lagBytes === undefined) return undefined;
  if (lagBytes <= 0) return 0;
  const since = Math.max(lastCommitAt ?? -Infinity, caughtUpAt ?? -Infinity);
  if (since === -Infinity) return undefined;
  return Math.max(0, (now - since) / 1000);
}

async function serverFacts(client: pg.Client): Promise<ServerFacts> {
  const { rows } = await client.query<{ v: string; standby: boolean }>(
    `select current_setting('server_version_num') as v, pg_is_in_recovery() as standby`,
  );
  const row = rows[0];
  return { versionNum: Number(row?.v ?? 0), standby: row?.standby === true };
}

function numberOrUndefined(text: string | null | undefined): number | undefined {
  if (text === null || text === undefined) return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

/**
 * Reads one sample of `slot`. Read-only: plain selects outside any transaction block, so nothing
 * holds back vacuum. Throws what the connection throws (the caller decides what a failure means).
 */
export async function sampleSlot(client: pg.Client, slot: string, clock: LagClock = {}): Promise<SlotSample> {
  const facts = await serverFacts(client);
  const modern = facts.versionNum >= 130000;
  const currentFn = facts.standby ? 'pg_last_wal_replay_lsn()' : 'pg_current_wal_lsn()';
  const current = await client.query<{ lsn: string | null; keep: string | null }>(
    `select ${currentFn}::text as lsn, ` +
      (modern ? `(select setting from pg_settings where name = 'max_slot_wal_keep_size')` : 'null::text') +
      ` as keep`,
  );
  const currentLsn = current.rows[0]?.lsn ?? '0/0';
  const keepMb = numberOrUndefined(current.rows[0]?.keep);
  const at = clock.now?.() ?? Date.now();
  const { rows } = await client.query<SlotRow>(
    `select active, active_pid, ` +
      (modern ? 'wal_status, safe_wal_size::text' : 'null::text as wal_status, null::text as safe_wal_size') +
      `, confirmed_flush_lsn::text, restart_lsn::text, ` +
      `pg_wal_lsn_diff($2::pg_lsn, confirmed_flush_lsn)::text as lag, ` +
      `pg_wal_lsn_diff($2::pg_lsn, restart_lsn)::text as retained ` +
      `from pg_replication_slots where slot_name = $1`,
    [slot, currentLsn],
  );
  const row = rows[0];
  clock.history?.record(at, currentLsn);
  const base = {
    at: new Date(at).toISOString(),
    slot,
    currentLsn,
    maxSlotWalKeepSizeBytes: keepMb === undefined || keepMb < 0 ? undefined : keepMb * 1024 * 1024,
  };
  if (row === undefined) {
    return {
      ...base,
      exists: false,
      active: false,
      activePid: undefined,
      walStatus: undefined,
      safeWalSizeBytes: undefined,
      confirmedFlushLsn: undefined,
      restartLsn: undefined,
      lagBytes: undefined,
      retainedWalBytes: undefined,
      lagSeconds: undefined,
    };
  }
  // A slot just used by a standby's WAL replay may briefly be ahead: a negative distance is 0.
  const lag = numberOrUndefined(row.lag);
  const lagBytes = lag === undefined ? undefined : Math.max(0, lag);
  const retained = numberOrUndefined(row.retained);
  const confirmed = row.confirmed_flush_lsn ?? undefined;
  const caughtUpAt = confirmed === undefined ? undefined : clock.history?.caughtUpAt(confirmed);
  return {
    ...base,
    exists: true,
    active: row.active,
    activePid: row.active_pid ?? undefined,
    walStatus: row.wal_status !== null && WAL_STATUSES.has(row.wal_status) ? (row.wal_status as WalStatus) : undefined,
    safeWalSizeBytes: numberOrUndefined(row.safe_wal_size),
    confirmedFlushLsn: confirmed,
    restartLsn: row.restart_lsn ?? undefined,
    lagBytes,
    retainedWalBytes: retained === undefined ? undefined : Math.max(0, retained),
    lagSeconds: lagSecondsOf(at, lagBytes, clock.lastCommitAt, caughtUpAt),
  };
}
