/**
 * What Delivery reports to the engine's listeners (metrics, the dashboard): once per batch and once per
 * checkpoint, never per event (core/engine-events.ts).
 */
import type { EngineEvents } from '../core/engine-events.ts';
import { batchWrittenReport } from '../envelope/event-sample.ts';
import type { IncrementalSnapshotState, ResumeState } from '../offsets/store.ts';
import type { EventBatch } from '../sinks/batch.ts';
import type { EventBatchBuilder } from '../sinks/batch-builder.ts';
import { BatchTally } from './batch-tally.ts';
import { pendingTables } from '../snapshot/resume-state.ts';

/**
 * Delivery's reports: each buffered event's tally, the commit times of the transactions since the last cut,
 * and the events emitted when a batch is durable or a checkpoint stored. Without a listener it still keeps
 * the tallies aligned with the buffer (a few typed-array writes) but builds no report.
 */
export class BatchReports {
  private readonly events: EngineEvents | undefined;
  private readonly tally = new BatchTally();
  /** Commit times (Unix ms) of the first and last transaction committed since the last cut. */
  private firstCommitAt: number | undefined;
  private lastCommitAt: number | undefined;
  /** The commit time of the last transaction in any batch cut so far (what its checkpoint will cover). */
  lastCutCommitAt: number | undefined;

  constructor(events: EngineEvents | undefined) {
    this.events = events;
  }

  /** See ChangeSink.tallyBase. */
  tallyBase(table: string): number {
    return this.tally.tallyBase(table);
  }

  /** Buffered event `index` ended with `tally`. */
  ended(index: number, tally: number): void {
    this.tally.set(index, tally);
  }

  /** A transaction committed at `commitAt` (Unix ms, when known). */
  committed(commitAt: number | undefined): void {
    if (commitAt === undefined) return;
    this.firstCommitAt ??= commitAt;
    this.lastCommitAt = commitAt;
  }

  /**
   * Takes the first `count` events of `pending` as a batch; `written` is to be called once it is durable.
   * `committed`: the batch ends at a transaction boundary (else it is part of an open transaction).
   */
  cut(pending: EventBatchBuilder, count: number, committed: boolean): { batch: EventBatch; written: () => void } {
    const buffered = pending.count;
    const batch = pending.take(count);
    const counts = this.tally.take(count, buffered);
    let first: number | undefined;
    let last: number | undefined;
    if (committed) {
      first = this.firstCommitAt;
      last = this.lastCommitAt;
      if (last !== undefined) this.lastCutCommitAt = last;
      this.firstCommitAt = this.lastCommitAt = undefined;
    }
    const events = this.events;
    if (events === undefined || batch.count === 0) return { batch, written: () => undefined };
    return { batch, written: batchWrittenReport(events, batch, counts, this.tally.labels, first, last) };
  }

  /** A checkpoint was stored (`durationMs` its store's latency), its resume state `before` and now `after`. */
  stored(
    lsn: string,
    delivered: number,
    lastCommitAt: number | undefined,
    durationMs: number,
    before: ResumeState,
    after: ResumeState,
  ): void {
    const events = this.events;
    if (events === undefined) return;
    const snapshotPending = pendingTables(after.incremental).length > 0;
    events.emit({ type: 'checkpoint-stored', lsn, events: delivered, lastCommitAt, durationMs, snapshotPending });
    if (after.incremental !== before.incremental && after.incremental !== undefined)
      emitSnapshotProgress(events, after.incremental);
  }
}

/** One `snapshot-progress` per table of an incremental snapshot, once its checkpoint (a chunk's end) is stored. */
export function emitSnapshotProgress(events: EngineEvents, incremental: IncrementalSnapshotState): void {
  for (const t of incremental.tables)
    events.emit({
      type: 'snapshot-progress',
      table: `${t.schema}.${t.table}`,
      rows: t.read,
      total: undefined,
      done: t.cursor.done,
    });
}
