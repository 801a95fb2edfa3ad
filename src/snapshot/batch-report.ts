/**
 * The initial snapshot's `batch-written` reports (core/engine-events.ts), once per batch: its rows by
 * table come from the progress before and after the batch (every row is an op `r` event), its sample's
 * tables from the last chunks serialized; nothing is counted per row.
 */
import { SAMPLE_SIZE, type EngineEvents, type EventCount } from '../core/engine-events.ts';
import { batchWrittenReport, type SampleLabels } from '../envelope/event-sample.ts';
import type { SnapshotTableState } from '../offsets/store.ts';
import type { EventBatch } from '../sinks/batch.ts';

/** The tables of the last SAMPLE_SIZE rows serialized (told per chunk), for the sample of the batch cut next. */
export class SnapshotSampleLabels implements SampleLabels {
  private readonly tables: string[] = [];
  private count = 0;

  /** A chunk of `rows` rows of `table` was serialized into the batch. */
  chunk(table: string, rows: number): void {
    for (let i = 0; i < Math.min(rows, SAMPLE_SIZE); i++) this.tables.push(table);
    if (this.tables.length > SAMPLE_SIZE) this.tables.splice(0, this.tables.length - SAMPLE_SIZE);
  }

  /** The batch about to be sampled holds `count` events (its last ones are the rows told last). */
  batch(count: number): void {
    this.count = count;
  }

  table(i: number): string {
    return this.tables[this.tables.length - (this.count - i)] ?? '';
  }

  op(): string {
    return 'r';
  }
}

/**
 * Call when `batch`'s write starts (`before` and `after`: every table's progress before and after its rows);
 * call what it returns once the batch is durable.
 */
export function snapshotBatchReport(
  events: EngineEvents,
  batch: EventBatch,
  before: readonly SnapshotTableState[],
  after: readonly SnapshotTableState[],
  labels: SnapshotSampleLabels,
): () => void {
  const counts: EventCount[] = [];
  // Both lists hold the same tables in the same order (copies of one progress list).
  for (let i = 0; i < after.length; i++) {
    const t = after[i] as SnapshotTableState;
    const rows = t.emitted - (before[i]?.emitted ?? 0);
    if (rows > 0) counts.push({ table: `${t.schema}.${t.table}`, op: 'r', count: rows });
  }
  labels.batch(batch.count);
  return batchWrittenReport(events, batch, counts, labels, undefined, undefined);
}
