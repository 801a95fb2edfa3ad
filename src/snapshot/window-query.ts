/**
 * Reading one chunk for an incremental snapshot window: the chunk itself, plus what the window
 * needs to know about the snapshot that read it.
 *
 * The chunk is read in its own REPEATABLE READ transaction whose first statement reports the
 * snapshot (pg_current_snapshot, or txid_current_snapshot before PostgreSQL 13) and, for the
 * read-only method, a WAL position: the insert position on a primary, the replay position on a
 * standby. The snapshot is taken before that statement runs, so every transaction it sees as
 * committed has its commit record before that position: once the stream has passed it, every
 * change the chunk reflects has been streamed (the window's high watermark).
 */
import type pg from 'pg';
import { CdcError } from '../core/errors.ts';
import { parseLsn } from '../protocol/lsn.ts';
import type { Lsn } from '../protocol/messages.ts';
import type { ChunkCursor } from '../offsets/store.ts';
import { copyRows, keyRangeSql, readChunk, type BackfillTable, type ChunkSizing } from './query.ts';
import type { CopyRow } from './copy-text.ts';
import { visibleInSnapshotSql } from './visibility.ts';

export interface WindowChunk {
  readonly rows: CopyRow[];
  readonly next: ChunkCursor;
  /** Transactions in progress for the read's snapshot (full xids as numbers). */
  readonly xip: number[];
  /** read-only: the stream position after which the window may close. */
  readonly highLsn?: Lsn;
}

/** `xmin:xmax:xip,xip,...` -> the xip list. */
export function parseSnapshotXip(text: string): number[] {
  const parts = text.split(':');
  if (parts.length !== 3)
    throw new CdcError('PROTOCOL_INVALID', `unexpected snapshot text ${JSON.stringify(text.slice(0, 80))}`);
  const list = parts[2] ?? '';
  return list === '' ? [] : list.split(',').map((x) => Number(x));
}

/**
 * A WAL position compared with what the walsender reports. An insert position at the very start
 * of a page points past the page header, where no record can start; the walsender's position is
 * then the page's start. Rounding down keeps an idle stream from waiting for the next record.
 */
export function highWatermark(lsn: Lsn, walBlockSize: number): Lsn {
  const offset = lsn % walBlockSize;
  return offset > 0 && offset <= 40 ? lsn - offset : lsn;
}

export async function readWindowChunk(
  client: pg.ClientBase,
  table: BackfillTable,
  cursor: ChunkCursor,
  sizing: ChunkSizing,
  options: {
    readonly major: number;
    readonly wantHighLsn: boolean;
    /** A keyless table read as this older snapshot saw it (visibility.ts): rows inserted since are left out. */
    readonly asOf?: string;
    /** A lost-slot recovery's condition on the rows (visibility.ts sinceHorizonSql). */
    readonly filter?: string;
    /**
     * onLostDeletes emit: also every key of the chunk's key range, unfiltered, in the same snapshot:
     * from the lowest key, or from the cursor, to the chunk's last key (to the highest at the end).
     */
    readonly keyRange?: {
      readonly from: 'lowest' | 'cursor';
      readonly onKeys: (keys: readonly (readonly string[])[]) => void;
    };
  },
): Promise<WindowChunk> {
  const snapshot = options.major >= 13 ? 'pg_current_snapshot()' : 'txid_current_snapshot()';
  const high = options.wantHighLsn
    ? `, (case when pg_is_in_recovery() then pg_last_wal_replay_lsn() else pg_current_wal_insert_lsn() ` +
      `end)::text as high,
         current_setting('wal_block_size')::int as block`
    : '';
  await client.query('begin isolation level repeatable read read only');
  try {
    const facts = await client.query<{ snap: string; high?: string | null; block?: number }>(
      `select ${snapshot}::text as snap${high}`,
    );
    const row = facts.rows[0];
    if (row === undefined) throw new CdcError('INTERNAL', 'the snapshot query returned no row');
    const visible =
      options.asOf !== undefined && cursor.kind === 'ctid' ? visibleInSnapshotSql(options.asOf, row.snap) : undefined;
    const filter =
      visible !== undefined && options.filter !== undefined
        ? `(${visible}) AND (${options.filter})`
        : (visible ?? options.filter);
    const chunk = await readChunk(client, table, cursor, sizing, filter);
    if (options.keyRange !== undefined && cursor.kind === 'key' && chunk.next.kind === 'key') {
      const upTo = chunk.next.done ? null : chunk.next.after;
      const from = options.keyRange.from === 'lowest' ? null : cursor.after;
      await readRangeKeys(client, table, from, upTo, options.keyRange.onKeys);
    }
    await client.query('commit');
    const xip = parseSnapshotXip(row.snap);
    if (!options.wantHighLsn) return { rows: chunk.rows, next: chunk.next, xip };
    if (row.high === null || row.high === undefined)
      throw new CdcError(
        'SOURCE_NOT_READY',
        'the server reported no WAL position for the read (a standby that replays nothing?)',
      );
    return { rows: chunk.rows, next: chunk.next, xip, highLsn: highWatermark(parseLsn(row.high), row.block ?? 8192) };
  } catch (error) {
    await client.query('rollback').catch(() => undefined);
    throw error;
  }
}

/** Keys read per query by `readRangeKeys`. */
const KEY_BATCH = 10_000;

/**
 * Every key of `table` greater than `after` and at most `upTo` (null: unbounded), unfiltered, handed
 * to `onKeys` as key tuples (the key columns' server text, in key order) in batches, read inside the
 * caller's REPEATABLE READ transaction, so in the chunk's snapshot (a lost-slot recovery's deletes,
 * recovery-deletes.ts).
 */
async function readRangeKeys(
  client: pg.ClientBase,
  table: BackfillTable,
  after: readonly string[] | null,
  upTo: readonly string[] | null,
  onKeys: (keys: readonly (readonly string[])[]) => void,
): Promise<void> {
  const width = table.keyIndexes.length;
  let from = after;
  for (;;) {
    const rows = await copyRows(client, keyRangeSql(table, from, upTo, KEY_BATCH), width);
    const keys = rows.map((row) =>
      row.map((value) => {
        if (typeof value !== 'string')
          throw new CdcError('INTERNAL', `a key column of ${table.schema}.${table.table} read as NULL`);
        return value;
      }),
    );
    onKeys(keys);
    const last = keys[keys.length - 1];
    if (last === undefined || keys.length < KEY_BATCH) break;
    from = last;
  }
}
