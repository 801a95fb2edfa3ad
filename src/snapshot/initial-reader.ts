/**
 * The consistent initial snapshot reader: every row of the chosen tables as of an exported
 * snapshot (postgres/exported-snapshot.ts), table by table in key order, chunk by chunk, into a callback.
 *
 * Contracts:
 * - Consistency: every worker imports the same snapshot before reading anything, so the rows are
 *   the tables' state at the slot's consistent point, whatever is written meanwhile.
 * - Progress: each chunk comes with the table's cursor after it (query.ts ChunkCursor, plain
 *   JSON). Store it once the chunk's events are durable; passing it back in `resume` continues
 *   after that chunk. (A resumed read needs a snapshot that still exists: the initial snapshot's
 *   export ends with its connection, so a crash mid-snapshot resumes through the incremental,
 *   watermarked method, reusing the same cursors: see docs/snapshots.md.)
 * - Parallelism: `parallelism` workers, each with its own connection and transaction, take tables
 *   from a queue; a table is read by one worker, in key order.
 * - Memory: a worker hands over a chunk once the next one is read (so it can say whether the
 *   chunk is the table's last), reads the one after while the callback works, and waits for the
 *   callback's promise before handing over another: at most 3 x parallelism chunks of rows exist
 *   at once. A slow sink slows the reads; nothing queues without bound.
 * - Callbacks of different workers may run concurrently; a worker never calls it again before its
 *   previous call resolved. A rejected callback or a failed read stops every worker (after their
 *   chunk in hand) and rejects `readSnapshot` with the first error.
 */
import type pg from 'pg';
import { CdcError } from '../core/errors.ts';
import type { CopyRow } from './copy-text.ts';
import { importSnapshot } from '../postgres/exported-snapshot.ts';
import { quoteQualified } from '../postgres/quote.ts';
import type { GeneratedColumns } from '../postgres/catalog.ts';
import type { ChunkCursor } from '../offsets/store.ts';
import { initialCursor, readChunk, type BackfillTable, type Chunk } from './query.ts';
import { chunkSizing, describeBackfillTable } from './tables.ts';

export interface TableName {
  readonly schema: string;
  readonly table: string;
}

/** `schema.table`, the key of `resume` and of progress (names may contain dots: it is only a map key). */
export function tableKey(name: TableName): string {
  return `${name.schema}.${name.table}`;
}

export interface SnapshotChunk {
  readonly table: BackfillTable;
  /** The rows in key order (ctid order for keyless tables), as output-function text. */
  readonly rows: CopyRow[];
  /** The table's cursor after this chunk: store it with the chunk's events. `done` on the table's last chunk. */
  readonly cursor: ChunkCursor;
  /** Rows of this table delivered so far in this run, this chunk included. */
  readonly tableRows: number;
  /** No rows of this table follow (`cursor.done` is then true). */
  readonly lastOfTable: boolean;
  /** Tables not yet started by any worker when this chunk was handed over. */
  readonly tablesWaiting: number;
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
  /** Workers (connections) reading at once; at most one per table. */
  readonly parallelism: number;
  /** Cursors from an earlier run by tableKey; a `done` table is skipped. */
  readonly resume?: ReadonlyMap<string, ChunkCursor>;
  /** Called with every worker's snapshot imported: the exporting connection may now be used again. */
  readonly onImported?: () => void;
  /** Called once the snapshot is imported, with its txid_current_snapshot text (before the DDL check). */
  readonly onSnapshotXids?: (asOf: string) => void;
  /** Handles one chunk; its promise is the backpressure. */
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
  const queue = options.tables.filter((t) => options.resume?.get(tableKey(t))?.done !== true);
  const rows = new Map<string, number>();
  let chunks = 0;
  let failure: { error: unknown } | undefined;
  const workerCount = Math.min(options.parallelism, queue.length);
  if (workerCount === 0) {
    options.onImported?.();
    return { rows, chunks };
  }

  // Every worker connects and imports first, so the export can end as early as possible.
  const clients: pg.Client[] = [];
  try {
    for (let i = 0; i < workerCount; i++) {
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

  const readTable = async (client: pg.Client, name: TableName): Promise<void> => {
    const table = await describeBackfillTable(client, name.schema, name.table, options.major, options.generatedColumns);
    const sizing = await chunkSizing(client, table, options.chunkRows);
    const key = tableKey(name);
    let cursor = options.resume?.get(key) ?? initialCursor(table);
    if (cursor.kind !== initialCursor(table).kind) {
      throw new CdcError(
        'CONFIG_INVALID',
        `the stored snapshot progress of ` +
          `${key} is by ${cursor.kind} but the table is now read by ${initialCursor(table).kind}`,
        {
          hint:
            'its key (primary key or replica identity index) was added or dropped since; restart the ' +
            'snapshot of this table',
        },
      );
    }
    let tableRows = 0;
    // One chunk of lookahead, so each chunk is known to be the table's last non-empty one (or
    // not) when it is handed over; the chunk after it is read meanwhile.
    const readAhead = (after: Chunk): Promise<Chunk> | undefined => {
      if (after.next.done) return undefined;
      const next = readChunk(client, table, after.next, sizing);
      // Handled here so a read failing while the callback runs is not an unhandled rejection;
      // it is still thrown where it is awaited.
      void next.catch(() => undefined);
      return next;
    };
    let chunk = await readChunk(client, table, cursor, sizing);
    let ahead = readAhead(chunk);
    while (failure === undefined) {
      const next = ahead === undefined ? undefined : await ahead;
      const last = next === undefined || (next.rows.length === 0 && next.next.done);
      ahead = next !== undefined && !last ? readAhead(next) : undefined;
      cursor = last ? (next?.next ?? chunk.next) : chunk.next;
      tableRows += chunk.rows.length;
      rows.set(key, tableRows);
      chunks++;
      try {
        await options.onChunk({
          table,
          rows: chunk.rows,
          cursor,
          tableRows,
          lastOfTable: last,
          tablesWaiting: queue.length,
        });
      } catch (error) {
        // Let the read in flight finish (its client is reused for nothing else) before giving up.
        await ahead?.catch(() => undefined);
        throw error;
      }
      if (last || next === undefined) return;
      chunk = next;
    }
    await ahead?.catch(() => undefined);
  };

  const worker = async (client: pg.Client): Promise<void> => {
    while (failure === undefined) {
      const next = queue.shift();
      if (next === undefined) return;
      try {
        await readTable(client, next);
      } catch (error) {
        failure ??= { error };
        return;
      }
    }
  };

  try {
    await Promise.all(clients.map(worker));
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
