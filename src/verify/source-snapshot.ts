/**
 * The source side of a verify: the selected tables as of one LSN, read through the same path the
 * initial snapshot takes (snapshot/), so each row becomes the very bytes an `r` event's row holds.
 *
 * The LSN: a TEMPORARY logical slot created with EXPORT_SNAPSHOT on a replication connection. Its
 * consistent point L and its exported snapshot match: the snapshot sees exactly the transactions
 * whose commit record lies before L (postgres/exported-snapshot.ts). The snapshot is imported into
 * a REPEATABLE READ READ ONLY transaction, the tables locked ACCESS SHARE (DDL waits for the verify
 * instead of changing what it reads), and then the replication connection is closed, which drops the
 * slot: nothing of the verify stays on the server, and the transaction keeps its snapshot.
 *
 * Rows: `COPY (SELECT <columns> FROM t) TO STDOUT`, one sequential scan per table (no ORDER BY: the
 * comparison is by key, so order does not matter), parsed by snapshot/copy-text.ts, and written
 * by the table's envelope/row-writer.ts RowWriter (with the table's shaping rule) into an
 * EventBatchBuilder: key bytes and row bytes exactly as the serializers write them.
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { CdcError } from '../core/errors.ts';
import { importSnapshot } from '../postgres/exported-snapshot.ts';
import { quoteIdent, quoteQualified } from '../postgres/quote.ts';
import { parseLsn } from '../protocol/lsn.ts';
import { sourceFailure } from '../postgres/source-errors.ts';
import type { Lsn, TupleData } from '../protocol/messages.ts';
import { UNCHANGED_TOAST } from '../protocol/messages.ts';
import { TopicRegistry, type EventBatch } from '../sinks/batch.ts';
import { EventBatchBuilder } from '../sinks/batch-builder.ts';
import type { GeneratedColumns } from '../postgres/catalog.ts';
import type { TableSchema } from '../source/relations.ts';
import type { TypeLookup, ValueOptions } from '../source/values.ts';
import { RowWriter } from '../envelope/row-writer.ts';
import type { TopicNaming } from '../envelope/topics.ts';
import { CopyTextParser, type CopyRow } from '../snapshot/copy-text.ts';
import { copySql, selectColumns } from '../snapshot/query.ts';
import { describeBackfillTable } from '../snapshot/tables.ts';
import { backfillTableSchema } from '../snapshot/keys.ts';

/** Rows serialized and handed over at once. */
const ROWS_PER_BATCH = 4096;

export interface SourceSnapshot {
  /** The consistent point: the snapshot holds the transactions committed before it. */
  readonly lsn: Lsn;
  /** The query connection holding the snapshot's transaction. */
  readonly client: pg.Client;
}

/**
 * Creates the temporary slot, imports its snapshot on `client` (which must be idle, outside a
 * transaction), locks `tables`, and drops the slot (closing `replication`).
 */
export async function openSourceSnapshot(
  client: pg.Client,
  replication: pg.Client,
  tables: readonly { schema: string; table: string }[],
): Promise<SourceSnapshot> {
  try {
    const slot = `pgcdc_verify_${process.pid}_${randomBytes(4).toString('hex')}`;
    const exported = await createTemporarySlotWithSnapshot(replication, slot);
    await importSnapshot(client, exported.snapshotName);
    if (tables.length > 0)
      await client.query(
        `LOCK TABLE ${tables.map((t) => quoteQualified(t.schema, t.table)).join(', ')} IN ACCESS SHARE MODE`,
      );
    return { lsn: exported.consistentPoint, client };
  } finally {
    await replication.end().catch(() => undefined);
  }
}

/**
 * CREATE_REPLICATION_SLOT ... TEMPORARY LOGICAL pgoutput EXPORT_SNAPSHOT (the pre-15 grammar every
 * supported major accepts), like postgres/exported-snapshot.ts createSlotWithSnapshot but dropped by
 * the server when the connection ends.
 */
async function createTemporarySlotWithSnapshot(
  replication: pg.ClientBase,
  slot: string,
): Promise<{ consistentPoint: Lsn; snapshotName: string }> {
  let result: pg.QueryResult<{ consistent_point: string; snapshot_name: string | null }>;
  try {
    result = await replication.query(
      `CREATE_REPLICATION_SLOT ${quoteIdent(slot)} TEMPORARY LOGICAL pgoutput EXPORT_SNAPSHOT`,
    );
  } catch (cause) {
    const message = cause instanceof Error ? cause.message : String(cause);
    throw new CdcError('SOURCE_QUERY_FAILED', `creating the temporary slot of the verify failed: ${message}`, {
      cause,
      hint:
        'verify needs a free replication slot (max_replication_slots) and the REPLICATION attribute, as pgcdc ' +
        'run does',
    });
  }
  const row = result.rows[0];
  if (!row?.snapshot_name) throw new CdcError('SOURCE_QUERY_FAILED', 'CREATE_REPLICATION_SLOT returned no snapshot');
  return { consistentPoint: parseLsn(row.consistent_point), snapshotName: row.snapshot_name };
}

/** One source table, ready to be written as the sink's serializer writes it. */
export interface SourceTable {
  readonly schema: TableSchema;
  readonly rows: RowWriter;
  readonly keyed: boolean;
  /** `SELECT <every column the events carry> FROM <table>` (snapshot/query.ts). */
  readonly select: string;
  /** Column index by name (TOAST placeholders name columns). */
  readonly columnIndex: ReadonlyMap<string, number>;
}

export async function describeSourceTable(
  snapshot: SourceSnapshot,
  name: { schema: string; table: string },
  major: number,
  generated: GeneratedColumns,
  lookup: TypeLookup,
  values: ValueOptions,
  naming: TopicNaming,
): Promise<SourceTable> {
  const table = await describeBackfillTable(snapshot.client, name.schema, name.table, major, generated);
  const schema = backfillTableSchema(table, lookup, values);
  const settings = naming.envelope ?? { format: 'json' as const, unavailableValue: '__pgcdc_unavailable_value' };
  const rule = naming.shaping?.ruleFor(name.schema, name.table);
  const rows = new RowWriter(schema, schema, rule, naming.shaping?.salt, settings);
  return {
    schema,
    rows,
    keyed: schema.keyIndexes.length > 0,
    select: selectColumns(table),
    columnIndex: new Map(schema.columns.map((c, i) => [c.name, i])),
  };
}

const CLOSE = Buffer.from('}');

/**
 * Writes rows as the sink holds them: per row, for a keyed table its key object (`{"id":1}`) as
 * event 2i and its row (without the closing brace, see verify/event-scan.ts) as event 2i+1; for a
 * keyless table the row alone as event i. Event ranges end with a newline: use `end(i) - 1`.
 */
export function serializeRows(table: SourceTable, rows: readonly CopyRow[], builder: EventBatchBuilder): EventBatch {
  for (const row of rows) {
    if (table.keyed) {
      builder.startEvent();
      builder.raw(table.rows.firstKeyPrefix);
      table.rows.writeKey(builder, row);
      builder.raw(CLOSE);
      builder.endEvent(0);
    }
    builder.startEvent();
    builder.raw(table.rows.firstRowPrefix);
    table.rows.writeRow(builder, row);
    builder.endEvent(0);
  }
  return builder.take(builder.count);
}

/** The row's bytes with `columns` written as the TOAST placeholder (the sink's row for such a key). */
export function serializeWithPlaceholders(table: SourceTable, row: CopyRow, columns: readonly string[]): Buffer {
  const tuple: TupleData = (row as TupleData).slice();
  for (const name of columns) {
    const index = table.columnIndex.get(name);
    if (index !== undefined) tuple[index] = UNCHANGED_TOAST;
  }
  const builder = new EventBatchBuilder(new TopicRegistry(), 1024, 1);
  builder.startEvent();
  builder.raw(table.rows.firstRowPrefix);
  table.rows.writeRow(builder, tuple);
  builder.endEvent(0);
  const batch = builder.take(1);
  return batch.data.subarray(0, batch.end(0) - 1);
}

/**
 * Streams every row of `table` (as the snapshot sees it) to `onRows` in batches of about
 * ROWS_PER_BATCH; `onRows` runs synchronously, so memory holds one batch and one COPY chunk.
 */
export async function streamTable(
  snapshot: SourceSnapshot,
  table: SourceTable,
  onRows: (rows: CopyRow[]) => void,
): Promise<void> {
  const columns = table.schema.columns.length;
  const select = table.select;
  const parser = new CopyTextParser(columns);
  const rows: CopyRow[] = [];
  try {
    const stream = snapshot.client.query(copyTo(copySql(select)));
    for await (const chunk of stream) {
      parser.push(chunk as Buffer, rows);
      if (rows.length >= ROWS_PER_BATCH) {
        onRows(rows);
        rows.length = 0;
      }
    }
    parser.end();
    if (rows.length > 0) onRows(rows);
  } catch (cause) {
    if (cause instanceof CdcError) throw cause;
    throw sourceFailure(cause, `reading ${table.schema.schema}.${table.schema.table}`);
  }
}
