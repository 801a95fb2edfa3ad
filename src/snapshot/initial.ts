/**
 * The initial snapshot: every row that exists at the slot's consistent point, read through the
 * snapshot the slot exported, delivered as op 'r' events before streaming starts from that same
 * point. Nothing is lost or delivered twice across the hand-off: the snapshot shows exactly the
 * transactions committed before the consistent point, and the slot streams exactly those after it.
 *
 * Resumable at chunk level: the progress of every table is stored after each durable chunk. The
 * exported snapshot dies with its connection, so after a crash Capture continues the remaining
 * chunks online, with the incremental (watermark) method, from the stored cursors.
 */
import { readSnapshot, tableKey, type SnapshotChunk } from './initial-reader.ts';
import type { ChunkCursor } from '../offsets/store.ts';
import { FRESH_CURSOR } from './resume-state.ts';
import type { SnapshotTableState } from '../offsets/store.ts';
import { backfillTableSchema } from './keys.ts';
import type { ExportedSlot } from '../postgres/exported-snapshot.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../core/log.ts';
import { formatLsn } from '../protocol/lsn.ts';
import { openConnection, type SourceEndpoint } from '../postgres/connect.ts';
import type { GeneratedColumns, TableRef } from '../postgres/catalog.ts';
import { TableSerializer } from '../envelope/json.ts';
import type { TopicNaming } from '../envelope/topics.ts';
import type { EngineEvents } from '../core/engine-events.ts';
import { snapshotBatchReport, SnapshotSampleLabels } from './batch-report.ts';

/** A batch of snapshot events is written (and its progress stored) once it holds this much. */
const FLUSH_BYTES = 8 * 1024 * 1024;
/**
 * Chunks of at least this many rows go to the serializer threads: below it, starting the threads
 * (tens of milliseconds each) costs more than serializing here.
 */
const THREAD_MIN_ROWS = 2000;

/** A serializer thread's lines of one chunk as a batch, without copying them. */
function threadBatch(out: SerializedChunk, topic: number, registry: TopicRegistry): EventBatch {
  const data = Buffer.from(out.data.buffer, out.data.byteOffset, out.data.byteLength);
  return new EventBatch(data, out.ends, new Uint32Array(out.rows).fill(topic), out.rows, registry);
}

import { EventBatch, TopicRegistry } from '../sinks/batch.ts';
import { EventBatchBuilder } from '../sinks/batch-builder.ts';
import type { Sink, SinkPosition } from '../sinks/contract.ts';
import type { PgType } from '../source/values.ts';
import { CopyRowCursor } from '../source/copy-row.ts';
import { CdcError } from '../core/errors.ts';
import { SerializerPool, type SerializedChunk } from './serializer-pool.ts';
import { writeChunkReads } from './chunk-reads.ts';

export interface InitialSnapshotInput {
  /** The snapshot to read and the LSN its events are stamped with (the slot's consistent point). */
  readonly exported: ExportedSlot;
  readonly tables: readonly TableRef[];
  readonly config: Config;
  readonly endpoint: SourceEndpoint;
  readonly major: number;
  /** The generated columns the stream carries (the publication's publish_generated_columns). */
  readonly generatedColumns?: GeneratedColumns | undefined;
  readonly types: ReadonlyMap<number, PgType>;
  readonly naming: TopicNaming;
  readonly sink: Sink;
  readonly log: Logger;
  /** Progress of an earlier, interrupted read of the same snapshot job (initial_only). */
  readonly resume?: readonly SnapshotTableState[];
  /** Stores the progress once a chunk is durable in the sink (the checkpoint of the snapshot). */
  readonly checkpoint: (position: SinkPosition, tables: readonly SnapshotTableState[]) => Promise<void>;
  /** The exported snapshot's xids (txid_current_snapshot text), once imported: store it with the progress. */
  readonly onSnapshotXids?: (asOf: string) => void;
  /** After each chunk: every table's read so far (for the progress bars and status). */
  readonly onTablesRead?: (tables: readonly SnapshotTableState[]) => void;
  /** Hears a `batch-written` per batch written (metrics). */
  readonly events?: EngineEvents | undefined;
}

export interface InitialSnapshotResult {
  readonly position: SinkPosition | undefined;
  readonly tables: readonly SnapshotTableState[];
}

/**
 * Reads and delivers the snapshot. Each chunk is written and then its progress stored, one chunk at
 * a time, so a crash resumes after the last stored chunk (see Capture). The snapshot's very last
 * row is marked "last" (also when the tables read last are empty): the final chunks of the most
 * recently finished non-empty tables are held back (in memory, `parallelism` chunks at most) and
 * written once every worker is done, the marked row last. A snapshot of empty tables only has no
 * row to mark; neither has a resumed one whose remaining tables are empty.
 */
export async function takeInitialSnapshot(input: InitialSnapshotInput): Promise<InitialSnapshotResult> {
  const { exported, config, log } = input;
  const lsn = exported.consistentPoint;
  const lsnText = formatLsn(lsn);
  const registry = new TopicRegistry();
  const serializers = new Map<string, TableSerializer>();
  const progress: SnapshotTableState[] = input.tables.map(
    (t) =>
      input.resume?.find((r) => r.schema === t.schema && r.table === t.table) ?? {
        schema: t.schema,
        table: t.table,
        cursor: FRESH_CURSOR,
        read: 0,
        emitted: 0,
      },
  );
  const indexOf = new Map(input.tables.map((t, i) => [tableKey(t), i]));
  let position: SinkPosition | undefined;
  const started = Date.now();
  const startRows = progress.reduce((n, t) => n + t.emitted, 0);

  const cursors = new Map<string, CopyRowCursor>();
  const rowCursor = (chunk: SnapshotChunk): CopyRowCursor => {
    const key = tableKey(chunk.table);
    let cursor = cursors.get(key);
    if (cursor === undefined) {
      cursor = new CopyRowCursor(chunk.table.columns.length);
      cursors.set(key, cursor);
    }
    cursor.reset(chunk.data);
    return cursor;
  };

  const serializerFor = (chunk: SnapshotChunk): TableSerializer => {
    const key = tableKey(chunk.table);
    let found = serializers.get(key);
    if (!found) {
      const schema = backfillTableSchema(chunk.table, (oid) => input.types.get(oid), config.values);
      found = new TableSerializer(schema, input.naming, registry);
      serializers.set(key, found);
    }
    return found;
  };

  // Chunks are serialized one at a time, in the order they are handed over, into one batch; the
  // batch is written (and the progress of the chunks in it stored) once it holds FLUSH_BYTES, while
  // the next chunks are serialized. At most two writes are in flight, which bounds memory and passes
  // the sink's pace back to the readers.
  const builder = new EventBatchBuilder(registry, FLUSH_BYTES + (1 << 20), 65_536);
  let writes: Promise<void> = Promise.resolve();
  let inFlight = 0;
  const labels = new SnapshotSampleLabels();
  let reported = progress.slice();
  /** Starts writing the batch; `written` is its write (and checkpoint), `before` the one before it. */
  const flush = (own?: {
    lines: EventBatch;
    release: () => void;
  }): { written: Promise<void>; before: Promise<void> } => {
    const before = writes;
    const batch = own?.lines ?? builder.take(builder.count);
    const stored = progress.slice();
    const report =
      input.events && batch.count > 0 ? snapshotBatchReport(input.events, batch, reported, stored, labels) : undefined;
    reported = stored;
    inFlight++;
    writes = writes.then(async () => {
      if (batch.count > 0 || position === undefined) position = await input.sink.write(batch);
      report?.();
      if (input.sink.releasesBatches === true) {
        if (own === undefined) builder.recycle(batch);
        else own.release();
      }
      await input.checkpoint(position, stored);
      inFlight--;
    });
    // A failed write surfaces where `writes` is awaited (the next full batch, or the end).
    void writes.catch(() => undefined);
    return { written: writes, before };
  };
  // Large chunks are serialized on threads (serializer-pool.ts), started with the first of them,
  // while the main thread reads COPY and writes; their lines are appended here in order.
  let pool: SerializerPool | undefined;
  const threads = config.snapshot.threads;
  const poolFor = (chunk: SnapshotChunk): SerializerPool | undefined => {
    if (threads === 0 || input.naming.shaping !== undefined || chunk.rowCount < THREAD_MIN_ROWS) return pool;
    if (pool === undefined) log.info({ threads }, 'snapshot: serializing large chunks on threads');
    pool ??= new SerializerPool(threads, {
      types: [...input.types],
      values: config.values,
      naming: input.naming,
      lsn,
      lsnText,
    });
    return pool;
  };
  /** The ordinal of each table's next row (event ids): assigned as chunks are handed to a thread. */
  const nextOrdinal = progress.map((t) => t.read);
  let tail: Promise<void> = Promise.resolve();
  const deliver = (chunk: SnapshotChunk, lastRowMarker: 'true' | 'last', final: boolean): Promise<void> => {
    const index = indexOf.get(tableKey(chunk.table)) ?? 0;
    const first = nextOrdinal[index] as number;
    nextOrdinal[index] = first + chunk.rowCount;
    const n = chunk.rowCount;
    const lines = poolFor(chunk)?.serialize({
      table: chunk.table,
      data: chunk.data,
      rowCount: n,
      tableIndex: index,
      firstOrdinal: first,
      last: lastRowMarker === 'last',
    });
    // Surfaced by `run` below; never an unhandled rejection meanwhile.
    lines?.catch(() => undefined);
    const run = tail.then(async () => {
      const entry = progress[index] as SnapshotTableState;
      const serializer = serializerFor(chunk);
      let own: { lines: EventBatch; release: () => void } | undefined;
      if (lines !== undefined) {
        const out = await lines;
        if (out.rows !== n) throw new CdcError('INTERNAL', `a serializer thread made ${out.rows} events of ${n} rows`);
        // The thread's bytes are written as they are, as a batch of their own (after what the builder holds).
        if (builder.count > 0) flush();
        own = { lines: threadBatch(out, serializer.topicNumber, registry), release: () => pool?.recycle(out) };
      } else {
        // The rows are read in place from the COPY bytes (source/copy-row.ts): no object per row.
        writeChunkReads(builder, serializer, rowCursor(chunk), {
          tableIndex: index,
          firstOrdinal: first,
          rowCount: n,
          last: lastRowMarker === 'last',
          lsn,
          lsnText,
        });
      }
      labels.chunk(`${chunk.table.schema}.${chunk.table.table}`, n);
      progress[index] = { ...entry, cursor: chunk.cursor, read: entry.read + n, emitted: entry.emitted + n };
      if (own !== undefined || final || builder.bytes >= FLUSH_BYTES || chunk.cursor.done) {
        const { written, before } = flush(own);
        // At most two writes in flight: wait for the older one, so the sink always has the next batch.
        if (final) await written;
        else if (inFlight > 1) await before;
      }
      input.onTablesRead?.(progress);
      if (chunk.cursor.done)
        log.info(
          { table: `${chunk.table.schema}.${chunk.table.table}`, rows: progress[index]?.emitted },
          'snapshot: table read',
        );
    });
    tail = run.catch(() => undefined);
    return run;
  };
  // Chunks handed to threads are delivered later, in order: up to `2 x threads` of them wait here, so
  // the readers go on meanwhile. A chunk serialized here is delivered before the next is taken.
  const queued: Promise<void>[] = [];
  const enqueue = async (run: Promise<void>): Promise<void> => {
    queued.push(run);
    while (queued.length > (pool === undefined ? 0 : 2 * threads)) await queued.shift();
  };

  // The final chunk of every non-empty table is held back until a later table's final chunk
  // arrives; at most `parallelism` are held (older ones go out at once). Whatever tables come
  // after, even empty ones, the last held chunk is then written last, with the snapshot's last row.
  const held: SnapshotChunk[] = [];
  const holdLimit = Math.max(1, config.snapshot.parallelism);
  const onChunk = async (chunk: SnapshotChunk): Promise<void> => {
    if (!chunk.lastOfTable || chunk.rowCount === 0) {
      await enqueue(deliver(chunk, 'true', false));
      return;
    }
    held.push(chunk);
    while (held.length > holdLimit) await enqueue(deliver(held.shift() as SnapshotChunk, 'true', false));
  };

  log.info(
    { tables: input.tables.length, at: lsnText, parallelism: config.snapshot.parallelism },
    'snapshot: reading the existing rows',
  );
  const resume = new Map<string, ChunkCursor>();
  for (const t of progress) if (t.read > 0 || t.cursor.done) resume.set(tableKey(t), t.cursor);
  try {
    await readSnapshot({
      snapshotName: exported.snapshotName,
      tables: input.tables.map((t) => ({ schema: t.schema, table: t.table })),
      major: input.major,
      generatedColumns: input.generatedColumns,
      connect: () =>
        openConnection(input.endpoint, 'query', 'pgcdc-snapshot', {
          statementTimeoutMs: config.snapshot.queryTimeoutMs,
        }),
      chunkRows: config.snapshot.chunkSize,
      parallelism: config.snapshot.parallelism,
      resume,
      onChunk,
      ...(input.onSnapshotXids ? { onSnapshotXids: input.onSnapshotXids } : {}),
    });
    await Promise.all(queued.splice(0));
    for (let i = 0; i < held.length; i++)
      await deliver(held[i] as SnapshotChunk, i === held.length - 1 ? 'last' : 'true', i === held.length - 1);
    await flush().written;
  } finally {
    await pool?.close();
  }
  const total = progress.reduce((n, t) => n + t.emitted, 0) - startRows;
  const seconds = Math.max(0.001, (Date.now() - started) / 1000);
  log.info(
    { rows: total, seconds: Number(seconds.toFixed(2)), rowsPerSecond: Math.round(total / seconds) },
    'snapshot: done',
  );
  return { position, tables: progress };
}
