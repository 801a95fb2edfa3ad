/**
 * The lost-slot policy (`onLost`, docs/recovery.md#lost-slots): what a start does when the restart
 * rule (restart-rule.ts) finds a gap it cannot stream over: the slot is missing or invalidated, it
 * confirmed past the stored offset, the offset is past the server's WAL, or the server is another
 * cluster (system identifier or timeline changed).
 *
 * - `fail` (default): the restart rule's refusal stands (exit 1, one line with the next step).
 * - `resnapshot`: one warning line names the cause and what is re-read; the old slot, when present
 *   (never an active one: the restart rule refuses those first), is dropped and a new slot created;
 *   streaming starts at its consistent point, and an incremental snapshot re-reads ONLINE, while
 *   streaming, what the gap can have changed. Its tables carry `recovery` in the checkpoint, so the
 *   request is durable before the first event: a crash during recovery continues it. Its read events
 *   say `source.snapshot: "recovery"`.
 *
 * What is re-read: on the same cluster, with an xid horizon stored in the checkpoint (xid-horizon.ts),
 * only row versions whose xmin is at or after the horizon (snapshot/visibility.ts sinceHorizonSql);
 * on another cluster, without a horizon, or when the horizon is too old to compare 32-bit xmins with, every row.
 * Deletes made inside the gap leave no row to read: their rows stay in the output (a consumer can
 * find them with `pgcdc verify`, which names the keys the output holds and the source lacks), unless
 * `onLostDeletes: emit` (recovery-keys.ts, snapshot/recovery-deletes.ts) emits a delete for each.
 */
import { CdcError, type ErrorCode } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { Checkpoint, IncrementalSnapshotState, SnapshotTableState } from '../offsets/store.ts';
import type { SystemIdentity } from '../postgres/slot.ts';
import type { TableName } from '../snapshot/initial-reader.ts';
import { FRESH_CURSOR, pendingTables, sameTable } from '../snapshot/resume-state.ts';

/** The restart rule's refusals that mean a gap `resnapshot` can recover from. */
export const GAP_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'SLOT_MISSING',
  'SLOT_LOST',
  'SLOT_AHEAD_OF_OFFSET',
  'SYSTEM_CHANGED',
  'OFFSET_AHEAD_OF_SERVER',
]);

/** The next step of the runbook, for the `fail` refusals' hints. */
export const RESNAPSHOT_HINT =
  'to recover, run again with --on-lost resnapshot (onLost: resnapshot): a new slot, and the rows the gap can ' +
  'have changed re-read online (docs/recovery.md#lost-slots)';

/**
 * A horizon at most this many xids behind the server's next xid is used: `age()` compares 32-bit
 * xids correctly within 2^31, and the recovery itself may run while many more xids are assigned.
 */
const HORIZON_REACH = 2n ** 30n;

/** Why a recovery runs and what it re-reads (decided once, at start). */
export interface LostSlotRecovery {
  readonly cause: ErrorCode;
  /** The restart rule's message. */
  readonly reason: string;
  /** Where the stored offset stood (the gap starts after it). */
  readonly since: string;
  /** The same cluster (system identifier and timeline): a stored horizon may be used. */
  readonly sameCluster: boolean;
  /** The stored horizon, when the same cluster stored one. */
  readonly storedHorizon: string | undefined;
}

/** The recovery for a restart-rule refusal, or undefined when `error` is no gap. */
export function lostSlotRecovery(
  error: CdcError,
  checkpoint: Checkpoint | undefined,
  system: SystemIdentity,
): LostSlotRecovery | undefined {
  if (!checkpoint || !GAP_CODES.has(error.code)) return undefined;
  const sameCluster =
    error.code !== 'SYSTEM_CHANGED' &&
    error.code !== 'OFFSET_AHEAD_OF_SERVER' &&
    checkpoint.systemId === system.systemId &&
    checkpoint.timeline === system.timeline;
  return {
    cause: error.code,
    reason: error.message,
    since: checkpoint.lsn,
    sameCluster,
    storedHorizon: sameCluster ? checkpoint.xidHorizon : undefined,
  };
}

/**
 * The horizon the re-read filters on, or undefined (read every row): the stored one when it is
 * close enough to `nextXid` (the server's next full xid now) for 32-bit xmins to be compared.
 */
export function usableHorizon(stored: string | undefined, nextXid: bigint): string | undefined {
  if (stored === undefined) return undefined;
  const horizon = BigInt(stored);
  if (horizon > nextXid || nextXid - horizon >= HORIZON_REACH) return undefined;
  return stored;
}

/**
 * A new incremental snapshot of `tables` marked as a recovery (with `horizon` when one is used),
 * named after `lsn` (the new slot's consistent point). A table still pending in `progress` for
 * another snapshot is read in full (its rows may never have been delivered, whatever their xmin);
 * other pending tables stay pending after them: no request is forgotten. A table whose earlier
 * recovery had not finished keeps that recovery's older horizon (or none): the checkpoint's horizon
 * was sampled after that recovery began, and the rows it had still to re-read are older than it.
 */
export function requestRecovery(
  progress: IncrementalSnapshotState | undefined,
  lsn: string,
  tables: readonly TableName[],
  horizon: string | undefined,
): IncrementalSnapshotState {
  const seq = (progress?.seq ?? 0) + 1;
  const pending = progress ? pendingTables(progress).map((i) => progress.tables[i] as SnapshotTableState) : [];
  const fresh: SnapshotTableState[] = tables.map((t) => {
    const earlier = pending.find((p) => sameTable(p, t));
    // A table still waiting for another snapshot (an adopted slot's rows, a request) is read in full.
    const since =
      earlier === undefined ? horizon : earlier.recovery ? olderHorizon(earlier.recovery.horizon, horizon) : undefined;
    return {
      schema: t.schema,
      table: t.table,
      cursor: FRESH_CURSOR,
      read: 0,
      emitted: 0,
      recovery: since !== undefined ? { horizon: since } : {},
    };
  });
  const carried = pending
    .filter((t) => t.recovery === undefined && !tables.some((name) => sameTable(name, t)))
    .map((t) => ({ schema: t.schema, table: t.table, cursor: FRESH_CURSOR, read: 0, emitted: 0 }));
  return { id: `${lsn}:i${seq}`, seq, tables: [...fresh, ...carried], requests: progress?.requests ?? [] };
}

/** The older of two horizons; undefined (read every row) when either is. */
function olderHorizon(a: string | undefined, b: string | undefined): string | undefined {
  if (a === undefined || b === undefined) return undefined;
  return BigInt(a) <= BigInt(b) ? a : b;
}

/** The one warning line of a recovery: the cause, what is re-read, and the deletes caveat. */
export function recoveryWarning(
  recovery: LostSlotRecovery,
  tables: number,
  horizon: string | undefined,
  deletes: 'emit' | 'keep' = 'keep',
): string {
  const what =
    horizon !== undefined
      ? `the rows of ${tables} table(s) written since transaction ${horizon} (the last checkpoint's xid horizon)`
      : `every row of ${tables} table(s) (${
          recovery.sameCluster ? 'no usable xid horizon was stored' : 'another cluster: nothing stored applies'
        })`;
  const caveat =
    deletes === 'emit'
      ? 'keys the output holds and the source no longer has (deleted in the gap) get a delete event when their ' +
        'table is re-read (onLostDeletes emit)'
      : 'rows deleted in the gap cannot be seen by a re-read and stay in the output (pgcdc verify lists them)';
  return (
    `onLost resnapshot: ${recovery.cause}: changes after ${recovery.since} cannot be streamed; created a new ` +
    `slot, streaming from it and re-reading online ${what} (source.snapshot "recovery"); ${caveat}`
  );
}

/** Refuses a recovery that cannot run here, before anything (the old slot) is touched. */
export function checkRecoveryPossible(
  recovery: LostSlotRecovery,
  method: string | { readonly unavailable: string },
  tables: number,
): void {
  if (typeof method !== 'string')
    throw new CdcError(
      'CONFIG_INVALID',
      `onLost resnapshot cannot recover from ${recovery.cause}: it re-reads online, and no incremental ` +
        `snapshot method is possible here: ${method.unavailable}`,
      { hint: 'configure a signal table (signalTable), or start over with a new offsets file and output' },
    );
  if (tables === 0)
    throw new CdcError(
      'CONFIG_INVALID',
      `onLost resnapshot cannot recover from ${recovery.cause}: no captured table is to be snapshotted ` +
        `(snapshot.include/skip)`,
      { hint: 'include the captured tables in snapshot.include, or start over with a new offsets file' },
    );
}

/** Logs the start of a recovery (one line) and returns its horizon as used. */
export function announceRecovery(
  recovery: LostSlotRecovery,
  nextXid: bigint | undefined,
  tables: number,
  log: Logger,
  deletes: 'emit' | 'keep' = 'keep',
): string | undefined {
  const horizon =
    recovery.sameCluster && nextXid !== undefined ? usableHorizon(recovery.storedHorizon, nextXid) : undefined;
  log.warn(
    { cause: recovery.cause, since: recovery.since, horizon: horizon ?? null, reason: recovery.reason },
    recoveryWarning(recovery, tables, horizon, deletes),
  );
  return horizon;
}

/** The server's next full transaction id (the xmax of a fresh snapshot); undefined when it cannot be read. */
export async function readNextXid(
  query: { query<R extends object>(sql: string): Promise<{ rows: R[] }> },
  major: number,
): Promise<bigint | undefined> {
  const sql =
    major >= 13
      ? 'select pg_snapshot_xmax(pg_current_snapshot())::text as xid'
      : 'select txid_snapshot_xmax(txid_current_snapshot())::text as xid';
  const { rows } = await query.query<{ xid: string }>(sql);
  const text = rows[0]?.xid;
  return text === undefined ? undefined : BigInt(text);
}
