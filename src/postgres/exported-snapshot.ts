/**
 * Slot creation with an exported snapshot: the hand-off point between the initial snapshot and
 * the stream. `CREATE_REPLICATION_SLOT ... EXPORT_SNAPSHOT` returns the slot's consistent point
 * and the name of a snapshot that sees exactly the transactions committed before it. Reading the
 * tables in that snapshot and then streaming from the consistent point delivers every row once:
 * no change is in both, none in neither.
 *
 * The exported snapshot lives only while the replication connection stays open and runs no other
 * command: importers must run `SET TRANSACTION SNAPSHOT` before the caller uses the connection
 * again (START_REPLICATION ends the export). Once imported, a transaction keeps the snapshot.
 *
 * The replication connection accepts only the simple query protocol: the slot name is quoted
 * with quote.ts. This mirrors ReplicationSession.createSlot (slot.ts), which
 * creates slots with NOEXPORT_SNAPSHOT for the streaming-only start.
 */
import type pg from 'pg';
import { CdcError } from '../core/errors.ts';
import { parseLsn } from '../protocol/lsn.ts';
import type { Lsn } from '../protocol/messages.ts';
import { quoteIdent, quoteLiteral } from './quote.ts';

export interface ExportedSlot {
  readonly slot: string;
  readonly consistentPoint: Lsn;
  /** The snapshot name, e.g. `00000003-00000002-1`: pass it to `importSnapshot`. */
  readonly snapshotName: string;
}

/** Creates a permanent pgoutput slot on a replication connection and exports its snapshot. */
export async function createSlotWithSnapshot(
  replication: pg.ClientBase,
  slot: string,
  failover = false,
): Promise<ExportedSlot> {
  let result: pg.QueryResult<{ consistent_point: string; snapshot_name: string | null }>;
  try {
    // The pre-15 grammar, accepted by every supported major (10 to 18); a failover slot (17+) needs the new one.
    result = await replication.query(
      failover
        ? `CREATE_REPLICATION_SLOT ${quoteIdent(slot)} LOGICAL pgoutput (SNAPSHOT 'export', FAILOVER true)`
        : `CREATE_REPLICATION_SLOT ${quoteIdent(slot)} LOGICAL pgoutput EXPORT_SNAPSHOT`,
    );
  } catch (cause) {
    const message = cause instanceof Error ? cause.message : String(cause);
    throw new CdcError('SOURCE_QUERY_FAILED', `CREATE_REPLICATION_SLOT ${slot} failed: ${message}`, { cause });
  }
  const row = result.rows[0];
  if (!row?.snapshot_name)
    throw new CdcError('SOURCE_QUERY_FAILED', `CREATE_REPLICATION_SLOT ${slot} returned no snapshot`);
  return { slot, consistentPoint: parseLsn(row.consistent_point), snapshotName: row.snapshot_name };
}

/**
 * Starts a read-only REPEATABLE READ transaction on a query connection that sees the exported
 * snapshot. `SET TRANSACTION SNAPSHOT` must be the transaction's first statement after BEGIN.
 */
export async function importSnapshot(client: pg.ClientBase, snapshotName: string): Promise<void> {
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await client.query(`SET TRANSACTION SNAPSHOT ${quoteLiteral(snapshotName)}`);
  } catch (cause) {
    await client.query('ROLLBACK').catch(() => undefined);
    const message = cause instanceof Error ? cause.message : String(cause);
    throw new CdcError('SOURCE_QUERY_FAILED', `cannot import snapshot ${snapshotName}: ${message}`, {
      cause,
      hint: 'the exporting replication connection must stay open and idle until every reader has imported the snapshot',
    });
  }
}
