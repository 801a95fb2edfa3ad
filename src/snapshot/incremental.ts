/**
 * The reading side of incremental (online) snapshots: for each table still to be read, one chunk
 * after another, each in its own DBLog window (snapshot/dblog-window.ts): low watermark, read, high
 * watermark, then wait for the stream side (snapshot/window-tracker.ts) to close the window and emit the rows.
 *
 * Contracts:
 * - Streaming never waits for a read: the loop keeps delivering changes while chunks are read on
 *   other connections. A window holds one chunk (`chunkSize` rows) in memory.
 * - Progress is the checkpoint's: the cursor moves only when a window's rows are emitted, and is
 *   stored with them. After a crash the next start continues after the last stored chunk.
 * - `parallelism` tables are read at once, one connection each; chunks of a table are sequential.
 * - A window that cannot prove its rows unchanged (a keyless table written to, DDL, a rare race)
 *   reads the same chunk again; a failure of a read or a watermark stops the capture.
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import type { Logger } from '../core/log.ts';
import { CdcError, toCdcError } from '../core/errors.ts';
import { TableSerializer } from '../envelope/json.ts';
import type { TopicNaming } from '../envelope/topics.ts';
import type { TopicRegistry } from '../sinks/batch.ts';
import type { GeneratedColumns } from '../postgres/catalog.ts';
import type { PgType, ValueOptions } from '../source/values.ts';
import { backfillTableSchema, keyText } from './keys.ts';
import type { RecoveryDeletes } from './recovery-deletes.ts';
import { initialCursor } from './query.ts';
import { chunkSizing, describeBackfillTable } from './tables.ts';
import { isPending, pendingTables } from './resume-state.ts';
import { readWindowChunk } from './window-query.ts';
import { sinceHorizonSql } from './visibility.ts';
import type { WatermarkWriter } from './watermarks.ts';
import type { WindowTracker, WindowOutcome } from './window-tracker.ts';

export interface IncrementalDeps {
  readonly tracker: WindowTracker;
  /** Opens a query connection for reading chunks (closed by the snapshotter). */
  readonly connect: () => Promise<pg.Client>;
  readonly watermarks: WatermarkWriter;
  readonly major: number;
  /** The generated columns the stream carries, read by the snapshot too (describeBackfillTable). */
  readonly generatedColumns: GeneratedColumns;
  readonly chunkRows: number;
  readonly parallelism: number;
  readonly types: (oid: number) => PgType | undefined;
  readonly values: ValueOptions;
  readonly naming: TopicNaming;
  readonly topics: TopicRegistry;
  readonly log: Logger;
  /** A read or watermark failed: the capture must stop (it resumes from the stored progress). */
  readonly onError: (error: CdcError) => void;
  /** onLostDeletes emit: the recovery's delete candidates (recovery-deletes.ts); the reader drops those it finds. */
  readonly recoveryDeletes?: RecoveryDeletes;
  /** A window closed (for progress displays). */
  readonly onWindow?: (tableIndex: number, outcome: WindowOutcome) => void;
}

/** Retries of one chunk before each warning (a table written to faster than a chunk is read). */
const RETRY_WARN_EVERY = 20;

export class IncrementalSnapshotter {
  private readonly deps: IncrementalDeps;
  /** Workers by `<snapshot id>:<table index>`. */
  private readonly workers = new Map<string, Promise<void>>();
  /** Distinguishes this run's windows from windows of an earlier run seen again in the stream. */
  private readonly nonce = randomBytes(4).toString('hex');
  private stopping = false;
  private windowCount = 0;

  constructor(deps: IncrementalDeps) {
    this.deps = deps;
  }

  /** Starts readers for tables waiting to be read, up to `parallelism`. Call when progress changed. */
  wake(): void {
    if (this.stopping) return;
    const progress = this.deps.tracker.progress;
    if (!progress) return;
    for (const index of pendingTables(progress)) {
      if (this.workers.size >= this.deps.parallelism) return;
      const key = `${progress.id}:${index}`;
      if (this.workers.has(key)) continue;
      const worker = this.readTable(progress.id, index).then(
        () => undefined,
        (error: unknown) => {
          if (!this.stopping) this.deps.onError(toCdcError(error, 'SOURCE_QUERY_FAILED'));
        },
      );
      this.workers.set(key, worker);
      void worker.finally(() => {
        this.workers.delete(key);
        this.wake();
      });
    }
  }

  /** Stops reading: open windows are dropped (their chunks are read again after a restart). */
  async stop(): Promise<void> {
    this.stopping = true;
    this.deps.tracker.cancelAll();
    await Promise.all([...this.workers.values()]);
    await this.deps.watermarks.close();
  }

  private async readTable(snapshotId: string, index: number): Promise<void> {
    const { tracker, log } = this.deps;
    const first = tracker.progress?.tables[index];
    if (!first) return;
    const client = await this.deps.connect();
    client.on('error', () => undefined);
    const name = `${first.schema}.${first.table}`;
    try {
      let table = await describeBackfillTable(
        client,
        first.schema,
        first.table,
        this.deps.major,
        this.deps.generatedColumns,
      );
      let schema = backfillTableSchema(table, this.deps.types, this.deps.values);
      let serializer = new TableSerializer(schema, this.deps.naming, this.deps.topics);
      const sizing = await chunkSizing(client, table, this.deps.chunkRows);
      if (table.keyIndexes.length === 0 && first.asOf === undefined) {
        log.warn(
          { table: name },
          'incremental snapshot: the table has no primary key and no replica identity index, so it is read in ' +
            ('ctid ranges and a chunk is read again whenever the table changes during its read; its rows cannot ' +
              'be told from rows already delivered, so its read events restate the table (docs/snapshots.md)'),
        );
      } else if (table.keyIndexes.length === 0) {
        log.info(
          { table: name },
          'incremental snapshot: continuing the initial snapshot of a table without a key, as the exported ' +
            'snapshot saw it (rows inserted since come from the stream)',
        );
      }
      log.info(
        { table: name, snapshot: snapshotId, method: this.deps.watermarks.method },
        'incremental snapshot: reading the table',
      );
      let retries = 0;
      // The first key read of a run starts at the lowest key (recovery-deletes.ts).
      let keysFrom: 'lowest' | 'cursor' = 'lowest';
      const deletes = this.deps.recoveryDeletes;
      if (deletes?.tracks(name) === true && table.keyIndexes.length === 0) {
        log.warn({ table: name }, 'onLostDeletes emit: the table has no key, so no delete can be matched to it');
        deletes.forget(name);
      }
      while (!this.stopping) {
        const progress = tracker.progress;
        const entry = progress?.id === snapshotId ? progress.tables[index] : undefined;
        if (!entry || !isPending(entry)) break;
        let cursor = entry.cursor;
        if (cursor.kind !== initialCursor(table).kind) {
          if (entry.read > 0) {
            throw new CdcError(
              'CONFIG_INVALID',
              `${name} gained or lost its key (primary key or replica identity index) during its incremental snapshot`,
              {
                hint: `stop and request the snapshot of ${name} again`,
              },
            );
          }
          cursor = initialCursor(table);
        }
        // A keyless table continuing an interrupted initial snapshot: read as that snapshot saw it.
        const asOf = cursor.kind === 'ctid' ? entry.asOf : undefined;
        // A lost-slot recovery with an xid horizon reads only the row versions written since it.
        const horizon = entry.recovery?.horizon;
        const filter = horizon !== undefined ? sinceHorizonSql(horizon) : undefined;
        const id = `${this.nonce}-${++this.windowCount}`;
        const handle = tracker.register({
          id,
          tableIndex: index,
          table: { schema: entry.schema, table: entry.table },
          schema,
          serializer,
          opensAt: this.deps.watermarks.method === 'read-only' ? 'now' : 'low-watermark',
          insertsStreamed: asOf !== undefined,
        });
        await this.deps.watermarks.low(id);
        const keyTexts = (keys: readonly (readonly string[])[]): string[] => {
          const texts: string[] = [];
          for (const key of keys) {
            const tuple = new Array<string | null>(schema.columns.length).fill(null);
            schema.keyIndexes.forEach((column, i) => (tuple[column] = key[i] ?? null));
            const text = keyText(schema, tuple);
            if (text !== undefined) texts.push(text);
          }
          return texts;
        };
        // onLostDeletes emit: the source's keys of the chunk's range, in the chunk's snapshot (recovery-deletes.ts).
        const keyRange =
          deletes?.tracks(name) === true && entry.recovery !== undefined && cursor.kind === 'key'
            ? { from: keysFrom, onKeys: (keys: readonly (readonly string[])[]) => deletes.drop(name, keyTexts(keys)) }
            : undefined;
        const chunk = await readWindowChunk(client, table, cursor, sizing, {
          major: this.deps.major,
          wantHighLsn: this.deps.watermarks.method === 'read-only',
          ...(asOf !== undefined ? { asOf } : {}),
          ...(filter !== undefined ? { filter } : {}),
          ...(keyRange !== undefined ? { keyRange } : {}),
        });
        if (keyRange !== undefined) keysFrom = 'cursor';
        handle.chunkRead(chunk);
        await this.deps.watermarks.high(id);
        const outcome = await handle.closed;
        await this.deps.watermarks.finished(id);
        this.deps.onWindow?.(index, outcome);
        if (outcome.kind === 'retry') {
          retries++;
          if (retries % RETRY_WARN_EVERY === 0)
            log.warn(
              { table: name, retries, reason: outcome.reason },
              'incremental snapshot: a chunk keeps being read again',
            );
          else log.debug({ table: name, reason: outcome.reason }, 'incremental snapshot: reading the chunk again');
          if (outcome.schemaChanged) {
            table = await describeBackfillTable(
              client,
              entry.schema,
              entry.table,
              this.deps.major,
              this.deps.generatedColumns,
            );
            schema = backfillTableSchema(table, this.deps.types, this.deps.values);
            serializer = new TableSerializer(schema, this.deps.naming, this.deps.topics);
          }
        } else if (outcome.kind === 'emitted') retries = 0;
      }
      const done = tracker.progress?.tables[index];
      if (done?.cursor.done === true && tracker.progress?.id === snapshotId)
        log.info({ table: name, rows: done.emitted }, 'incremental snapshot: table done');
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}
