/**
 * Counts Delivery's events by table and op for the batch summaries (the `batch-written` engine event,
 * read by metrics), without an object or a string per event: each buffered event's tally (see OP_TALLY in
 * envelope/change-sink.ts) is kept in a typed array parallel to Delivery's buffered events, and folded into
 * per-tally counters when a batch is cut; the summary lists only the tallies the batch touched.
 */
import { SAMPLE_SIZE, type EventCount } from '../core/engine-events.ts';
import { OP_TALLY, TALLIES_PER_TABLE } from '../envelope/change-sink.ts';
import type { SampleLabels } from '../envelope/event-sample.ts';

const OP_NAMES: readonly string[] = (() => {
  const names: string[] = new Array<string>(TALLIES_PER_TABLE).fill('other');
  for (const [op, tally] of Object.entries(OP_TALLY)) names[tally] = op;
  return names;
})();

export class BatchTally {
  private readonly tables: string[] = [];
  private readonly tableNumbers = new Map<string, number>();
  /** The tally of each buffered event, in buffer order (-1: other). */
  private perEvent = new Int32Array(4096);
  /** Per tally, events of the batch being folded; zero between batches. */
  private counts = new Float64Array(TALLIES_PER_TABLE * 8);
  private readonly touched: number[] = [];
  /** The tallies of the last batch's last SAMPLE_SIZE events (for `labels`). */
  private readonly sampleTallies = new Int32Array(SAMPLE_SIZE);
  private sampleFrom = 0;

  /** Labels of the last batch taken's events (valid until the next `take`), for envelope/event-sample.ts. */
  readonly labels: SampleLabels = {
    table: (i) => this.tableOf(this.sampleTallies[i - this.sampleFrom] ?? -1),
    op: (i) => this.opOf(this.sampleTallies[i - this.sampleFrom] ?? -1),
  };

  /** See ChangeSink.tallyBase. */
  tallyBase(table: string): number {
    let n = this.tableNumbers.get(table);
    if (n === undefined) {
      n = this.tables.length;
      this.tables.push(table);
      this.tableNumbers.set(table, n);
      const need = (n + 1) * TALLIES_PER_TABLE;
      if (need > this.counts.length) {
        const grown = new Float64Array(Math.max(need, this.counts.length * 2));
        grown.set(this.counts);
        this.counts = grown;
      }
    }
    return n * TALLIES_PER_TABLE;
  }

  /** Buffered event `index` is counted under `tally`. */
  set(index: number, tally: number): void {
    if (index >= this.perEvent.length) {
      const grown = new Int32Array(Math.max(index + 1, this.perEvent.length * 2));
      grown.set(this.perEvent);
      this.perEvent = grown;
    }
    this.perEvent[index] = tally;
  }

  /**
   * The first `count` buffered events were cut into a batch (`buffered` were buffered): their counts by table
   * and op; the rest move to the front.
   */
  take(count: number, buffered: number): EventCount[] {
    const perEvent = this.perEvent;
    const counts = this.counts;
    const touched = this.touched;
    let other = 0;
    for (let i = 0; i < count; i++) {
      const tally = perEvent[i] as number;
      if (tally < 0) other++;
      else {
        if (counts[tally] === 0) touched.push(tally);
        counts[tally] = (counts[tally] as number) + 1;
      }
    }
    this.sampleFrom = Math.max(0, count - SAMPLE_SIZE);
    this.sampleTallies.set(perEvent.subarray(this.sampleFrom, count));
    if (buffered > count) perEvent.copyWithin(0, count, buffered);
    const summary: EventCount[] = [];
    for (const tally of touched) {
      summary.push({ table: this.tableOf(tally), op: this.opOf(tally), count: counts[tally] as number });
      counts[tally] = 0;
    }
    touched.length = 0;
    if (other > 0) summary.push({ table: '', op: 'other', count: other });
    return summary;
  }

  private tableOf(tally: number): string {
    return tally < 0 ? '' : (this.tables[Math.floor(tally / TALLIES_PER_TABLE)] ?? '');
  }

  private opOf(tally: number): string {
    return tally < 0 ? 'other' : (OP_NAMES[tally % TALLIES_PER_TABLE] ?? 'other');
  }
}
