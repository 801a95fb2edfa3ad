/**
 * The consistent initial snapshot reader: every row of the chosen tables as of an exported
 * snapshot (postgres/exported-snapshot.ts), table by table in key order, chunk by chunk, into a callback.
 *
 * Contracts:
 * - Consistency: every reader imports the same snapshot before reading anything, so the rows are
 *   the tables' state at the slot's consistent point, whatever is written meanwhile.
 * - Order: chunks are handed over one at a time, in one order whatever `parallelism` is: the
 *   tables in the order given, each table's chunks in key order (ctid order for keyless tables).
 *   A keyed table's chunks are its next `chunkRows` keys each, so the chunks, their rows and the
 *   event ids made from them are the same for every `parallelism`.
 * - Progress: each chunk comes with the table's cursor after it (query.ts ChunkCursor, plain
 *   JSON). Store it once the chunk's events are durable; passing it back in `resume` continues
 *   after that chunk. (A resumed read needs a snapshot that still exists: the initial snapshot's
 *   export ends with its connection, so a crash mid-snapshot resumes through the incremental,
 *   watermarked method, reusing the same cursors: see docs/snapshots.md.)
 * - Parallelism: `parallelism` readers, each with its own connection, read chunks at once, of one
 *   table or of the next ones. A keyed table is cut into ranges by its keys: the end of each range
 *   is found before it is read (query.ts keyBoundarySql, an index walk over chunkRows keys), so the
 *   next range can be read meanwhile; a keyless table into ranges of heap pages.
 * - Memory: at most `2 x parallelism + 1` chunks are read and not yet handed over (a chunk is
 *   handed over once the next chunk of its table is read, so it can say whether it is the table's
 *   last); the callback's promise is the backpressure: a slow sink slows the reads.
 * - A rejected callback or a failed read stops every reader (after its chunk in hand) and rejects
 *   `readSnapshot` with the first error.
 */
import type pg from 'pg';
import { CdcError } from '../core/errors.ts';
import { countCopyRows } from '../source/copy-row.ts';
import { importSnapshot } from '../postgres/exported-snapshot.ts';
import { quoteQualified } from '../postgres/quote.ts';
import type { GeneratedColumns } from '../postgres/catalog.ts';
import type { ChunkCursor } from '../offsets/store.ts';
import { parseLines, type CopyRow } from './copy-text.ts';
import { copyBytes, type BackfillTable } from './query.ts';
import { cursorAfterFinal, RangePlanner, tableKey, type ChunkTask, type TableName } from './range-planner.ts';

export { tableKey, type TableName } from './range-planner.ts';

export interface SnapshotChunk {
  readonly table: BackfillTable;
  /** The rows in key order (ctid order for keyless tables) as COPY text, whole rows (source/copy-row.ts reads them). */
  readonly data: Buffer;
  /** How many rows `data` holds. */
  readonly rowCount: number;
  /** The table's cursor after this chunk: store it with the chunk's events. `done` on the table's last chunk. */
  readonly cursor: ChunkCursor;
  /** Rows of this table delivered so far in this run, this chunk included. */
  readonly tableRows: number;
  /** No rows of this table follow (`cursor.done` is then true). */
  readonly lastOfTable: boolean;
  /** Tables not yet started when this chunk was handed over. */
  readonly tablesWaiting: number;
}

/** A chunk's rows parsed into values (tests and tools; the snapshot reads them in place). */
export function chunkRows(chunk: SnapshotChunk): CopyRow[] {
  const rows: CopyRow[] = [];
  parseLines(chunk.data.toString('utf8'), chunk.table.columns.length, rows);
  return rows;
}

export interface SnapshotOptions {
  /** The exported snapshot's name. */
  readonly snapshotName: string;
  readonly tables: readonly TableName[];
  /** Server major (generated columns exist from 12). */
  readonly major: number;
  /**
   * The generated columns the stream carries (see describeBackfillTable); by default those of pgcdc's own publication.
   * */
  readonly generatedColumns?: GeneratedColumns | undefined;
  /** Opens a query connection with pgcdc's session settings (connect.ts SESSION_OPTIONS). Closed by the reader. */
  readonly connect: () => Promise<pg.Client>;
  /** Rows per keyset chunk (and the row target of a ctid chunk). */
  readonly chunkRows: number;
  /** Readers (connections) reading at once. */
  readonly parallelism: number;
  /** Cursors from an earlier run by tableKey; a `done` table is skipped. */
  readonly resume?: ReadonlyMap<string, ChunkCursor>;
  /** Called with every reader's snapshot imported: the exporting connection may now be used again. */
  readonly onImported?: () => void;
  /** Called once the snapshot is imported, with its txid_current_snapshot text (before the DDL check). */
  readonly onSnapshotXids?: (asOf: string) => void;
  /** Handles one chunk; its promise is the backpressure. Never called again before it resolved. */
  readonly onChunk: (chunk: SnapshotChunk) => Promise<void>;
}

export interface SnapshotSummary {
  /** Rows delivered per tableKey in this run. */
  readonly rows: ReadonlyMap<string, number>;
  readonly chunks: number;
}

/** Reads the snapshot; resolves when every table is read and every callback resolved. */
export async function readSnapshot(options: SnapshotOptions): Promise<SnapshotSummary> {
  if (!Number.isInteger(options.parallelism) || options.parallelism < 1) {
    throw new CdcError('CONFIG_INVALID', `snapshot parallelism must be a positive integer, not ${options.parallelism}`);
  }
  if (!Number.isInteger(options.chunkRows) || options.chunkRows < 1) {
    throw new CdcError('CONFIG_INVALID', `snapshot chunk size must be a positive integer, not ${options.chunkRows}`);
  }
  const waiting = options.tables.filter((t) => options.resume?.get(tableKey(t))?.done !== true);
  const rows = new Map<string, number>();
  let chunks = 0;
  if (waiting.length === 0) {
    options.onImported?.();
    return { rows, chunks };
  }

  // Every reader connects and imports first, so the export can end as early as possible.
  const clients: pg.Client[] = [];
  try {
    for (let i = 0; i < options.parallelism; i++) {
      const client = await options.connect();
      client.on('error', () => undefined); // surfaced by the failing query instead
      clients.push(client);
    }
    await Promise.all(clients.map((client) => importSnapshot(client, options.snapshotName)));
    if (options.onSnapshotXids) options.onSnapshotXids(await snapshotXids(clients[0] as pg.Client, options.major));
    await guardAgainstDdl(clients[0] as pg.Client, options);
  } catch (error) {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    throw error;
  }
  options.onImported?.();

  const plan = new RangePlanner(options, waiting);
  const tasks: ChunkTask[] = [];
  let handedOver = 0;
  let failure: { error: unknown } | undefined;
  // Readers wait here for room (the window) or for a task to be planned; woken on every change.
  let wake: () => void = () => undefined;
  let changed = new Promise<void>((resolve) => (wake = resolve));
  const notify = (): void => {
    wake();
    changed = new Promise<void>((resolve) => (wake = resolve));
  };
  const window = 2 * options.parallelism + 1;
  // Planning runs on one reader at a time: each range's start is the previous one's end.
  let planning: Promise<void> = Promise.resolve();

  const reader = async (client: pg.Client): Promise<void> => {
    while (failure === undefined) {
      while (failure === undefined && tasks.length - handedOver >= window) await changed;
      if (failure !== undefined) return;
      // plan.next runs only here, one reader at a time, and the reader asking takes the task.
      const claim = planning.then(() => plan.next(client));
      planning = claim.then(
        () => undefined,
        () => undefined,
      );
      let task: ChunkTask | undefined;
      try {
        task = await claim;
      } catch (error) {
        failure ??= { error };
        notify();
        return;
      }
      if (task === undefined || failure !== undefined) {
        notify();
        return;
      }
      tasks.push(task);
      const result = copyBytes(client, task.select).then((data) => ({ data, rows: countCopyRows(data) }));
      task.result = result;
      notify();
      try {
        await result;
      } catch (error) {
        failure ??= { error };
        notify();
        return;
      }
      notify();
    }
  };

  // Hands the chunks over in task order, each once the next task of its table is read.
  const handOver = async (): Promise<void> => {
    const tableRows = new Map<string, number>();
    for (let i = 0; ; i++) {
      const task = await taskAt(i);
      if (task === undefined) return;
      const chunk = await (task.result as Promise<{ data: Buffer; rows: number }>);
      let last = task.final;
      let cursor = task.final ? cursorAfterFinal(task, chunk.data, chunk.rows) : task.to;
      let skip = 0;
      if (!last) {
        const next = await taskAt(i + 1);
        if (next !== undefined && next.open === task.open && next.final) {
          const after = await (next.result as Promise<{ data: Buffer; rows: number }>);
          if (after.rows === 0) {
            last = true;
            cursor = next.to;
            skip = 1;
          }
        }
      }
      const key = tableKey(task.open.name);
      const total = (tableRows.get(key) ?? 0) + chunk.rows;
      tableRows.set(key, total);
      rows.set(key, total);
      chunks++;
      await options.onChunk({
        table: task.open.table,
        data: chunk.data,
        rowCount: chunk.rows,
        cursor,
        tableRows: total,
        lastOfTable: last,
        tablesWaiting: plan.tablesWaiting,
      });
      i += skip;
      handedOver = i + 1;
      notify();
    }
  };
  /** Task `i` once planned and taken by a reader; undefined when planning ended before it. */
  const taskAt = async (i: number): Promise<ChunkTask | undefined> => {
    for (;;) {
      if (failure !== undefined) throw failure.error;
      const task = tasks[i];
      if (task?.result !== undefined) return task;
      if (task === undefined && plan.finished) return undefined;
      await changed;
    }
  };

  try {
    const readers = Promise.all(clients.map(reader));
    try {
      await handOver();
    } catch (error) {
      failure ??= { error };
      notify();
    }
    // Each reader ends after its chunk in hand, before the clients do.
    await readers;
  } finally {
    await Promise.all(
      clients.map((c) =>
        c
          .query('COMMIT')
          .catch(() => undefined)
          .then(() => c.end().catch(() => undefined)),
      ),
    );
  }
  if (failure !== undefined) throw failure.error;
  return { rows, chunks };
}

/**
 * DDL and the snapshot. A query under an old snapshot is planned with the current catalog, and a
 * table rewrite (ALTER TYPE, VACUUM FULL, CLUSTER) makes older snapshots see the table empty. So
 * the tables are locked (ACCESS SHARE, held until the snapshot transaction ends, so later DDL waits
 * for the snapshot), and then each table's definition as the snapshot sees it is compared with the
 * current one: DDL that slipped in between the export and the lock fails the snapshot, retryably.
 */
async function guardAgainstDdl(client: pg.Client, options: SnapshotOptions): Promise<void> {
  if (options.tables.length === 0) return;
  const list = options.tables.map((t) => quoteQualified(t.schema, t.table)).join(', ');
  await client.query(`LOCK TABLE ${list} IN ACCESS SHARE MODE`);
  const definitionSql =
    `select c.oid::int as oid, c.relfilenode::text as file,
      coalesce((select string_agg(a.attname || ':' || a.atttypid::text, ',' order by a.attnum)
                  from pg_attribute a where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped), '') as columns
    from pg_class c join pg_namespace n on n.oid = c.relnamespace join unnest($1::text[], $2::text[]) as t(s, ` +
    `r) on n.nspname = t.s and c.relname = t.r
   order by 1`;
  const params = [options.tables.map((t) => t.schema), options.tables.map((t) => t.table)];
  const seenBySnapshot = await client.query<{ oid: number; file: string; columns: string }>(definitionSql, params);
  const current = await options.connect();
  current.on('error', () => undefined);
  try {
    const now = await current.query<{ oid: number; file: string; columns: string }>(definitionSql, params);
    const before = JSON.stringify(seenBySnapshot.rows);
    if (before !== JSON.stringify(now.rows)) {
      throw new CdcError(
        'SNAPSHOT_CONFLICT',
        'a snapshot table changed (DDL) while the snapshot was starting, so the snapshot cannot be read consistently',
        {
          retryable: true,
          hint: 'run pgcdc again: it takes the snapshot again on a fresh slot',
        },
      );
    }
  } finally {
    await current.end().catch(() => undefined);
  }
}

/** The imported snapshot's xmin, xmax and running xids (snapshot/visibility.ts reads keyless tables by them). */
async function snapshotXids(client: pg.Client, major: number): Promise<string> {
  const fn = major >= 13 ? 'pg_current_snapshot()' : 'txid_current_snapshot()';
  const { rows } = await client.query<{ snap: string }>(`select ${fn}::text as snap`);
  const snap = rows[0]?.snap;
  if (snap === undefined) throw new CdcError('INTERNAL', 'the snapshot query returned no row');
  return snap;
}
