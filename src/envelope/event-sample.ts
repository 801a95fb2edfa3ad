/**
 * A few events of a batch read for a sample (the dashboard's recent events): the id, the LSN the id
 * starts with and the key, sliced out of the line's bytes without parsing it (the layout is in
 * sinks/event-line.ts). Called once per batch for its last SAMPLE_SIZE events, never per event.
 */
import { SAMPLE_SIZE, type EngineEvents, type EventCount, type SampledEvent } from '../core/engine-events.ts';
import type { EventBatch } from '../sinks/batch.ts';
import { COLON, ID_START, KEY_MEMBER, QUOTE, skipString, skipValue, startsWith } from '../sinks/event-line.ts';

/** Where the table and op of event i come from (the caller's tallies). */
export interface SampleLabels {
  table(i: number): string;
  op(i: number): string;
}

/** The last SAMPLE_SIZE events of `batch`; a line that does not parse is left out (never thrown). */
export function sampleBatch(batch: EventBatch, labels: SampleLabels, commitAt: number | undefined): SampledEvent[] {
  const sample: SampledEvent[] = [];
  const data = batch.data;
  for (let i = Math.max(0, batch.count - SAMPLE_SIZE); i < batch.count; i++) {
    const start = batch.start(i);
    const end = batch.end(i) - 1;
    try {
      const idEnd = data.indexOf(QUOTE, start + ID_START);
      const colon = data.indexOf(COLON, start + ID_START);
      const topicEnd = skipString(data, data.indexOf(COLON, idEnd + 2) + 1, end);
      if (!startsWith(data, topicEnd, KEY_MEMBER)) continue;
      const keyStart = topicEnd + KEY_MEMBER.length;
      const keyEnd = skipValue(data, keyStart, end);
      // Copied: the batch's bytes may be reused once it is written (EventBatchBuilder.recycle).
      const line = Buffer.from(data.subarray(start, end));
      sample.push({
        table: labels.table(i),
        op: labels.op(i),
        id: data.toString('utf8', start + ID_START, idEnd),
        lsn: colon !== -1 && colon < idEnd ? data.toString('latin1', start + ID_START, colon) : undefined,
        commitAt,
        key: data.toString('utf8', keyStart, keyEnd),
        line: () => line.toString('utf8'),
      });
    } catch {
      // Not an event line of the usual layout: it is simply not sampled.
    }
  }
  return sample;
}

/**
 * The `batch-written` report of one batch, Delivery's and the initial snapshot's alike. Call when
 * `batch`'s write starts; call what it returns once the batch is durable: it emits the batch's
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
