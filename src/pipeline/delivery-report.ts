/**
 * What Delivery reports to the engine's listeners (metrics, the dashboard): once per batch and once per
 * checkpoint, never per event (core/engine-events.ts).
 */
import type { EngineEvents, EventCount } from '../core/engine-events.ts';
import { sampleBatch, type SampleLabels } from '../envelope/event-sample.ts';
import type { IncrementalSnapshotState } from '../offsets/store.ts';
import type { EventBatch } from '../sinks/batch.ts';

/**
 * Call when `batch`'s write starts; call what it returns once the batch is durable: it emits the batch's
 * `batch-written` with the write's latency. The sample is read now, while `labels` are the batch's.
 */
export function batchWrittenReport(
  events: EngineEvents,
  batch: EventBatch,
  counts: readonly EventCount[],
  labels: SampleLabels,
  firstCommitAt: number | undefined,
  lastCommitAt: number | undefined,
): () => void {
  const sample = sampleBatch(batch, labels, lastCommitAt);
  const started = performance.now();
  return () =>
    events.emit({
      type: 'batch-written',
      events: batch.count,
      bytes: batch.data.length,
      writeMs: performance.now() - started,
      durableAt: Date.now(),
      firstCommitAt,
      lastCommitAt,
      counts,
      sample,
    });
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
