/**
 * One keyed table's verify, in chunks (chunks.ts):
 * 1. the sink's events replayed into a RowHashTable (key hash -> last row hash), summed per chunk,
 *    the table then dropped: the source pass runs with the per-chunk sums only;
 * 2. the source streamed once (COPY, one sequential scan) and summed per chunk the same way;
 * 3. chunks with equal row count and checksum are equal and cost nothing more; the others are
 *    drilled into: the sink replayed again keeping the keys of those chunks only (KeyedState with a
 *    filter), the source streamed again comparing the rows of those chunks only (TableComparer),
 *    which names the missing, extra and different keys exactly. Drill-downs are split into passes
 *    of at most DRILL_KEYS sink keys so that memory stays bounded however much differs.
 */
import type { Lsn } from '../protocol/messages.ts';
import type { CopyRow } from '../snapshot/copy-text.ts';
import { chunkCountFor, RowHashTable } from './chunks.ts';
import { ChunkSummer, TableComparer, emptyComparison, type TableComparison } from './compare.ts';
import type { ReplayOutcome, ReplayTable, SinkReader } from './sink-reader.ts';
import { KeyedState } from './sink-state.ts';
import type { SourceTable } from './source-snapshot.ts';

/** Sink keys kept at once by a drill-down (~70 bytes each). */
export const DRILL_KEYS = 2_000_000;

export interface KeyedTableInput {
  readonly name: string;
  readonly source: SourceTable;
  /** Streams every source row of the table to `onRows` (source-snapshot.ts streamTable); called once per pass. */
  readonly streamSource: (onRows: (rows: CopyRow[]) => void) => Promise<void>;
  readonly reader: SinkReader;
  readonly replay: ReplayTable;
  readonly upTo: Lsn;
  /** The source's row estimate (pg_class.reltuples), for the chunk count. */
  readonly estimate: number;
  readonly limit: number;
  readonly showValues: boolean;
  /** Called with each drill-down pass's chunks (for tests). */
  readonly onDrill?: (chunks: readonly number[]) => void;
}

/** Groups `chunks` into passes of at most `budget` sink keys (a chunk larger than it is a pass alone). */
export function drillPasses(chunks: readonly number[], sinkCounts: Float64Array, budget: number): number[][] {
  const passes: number[][] = [];
  let pass: number[] = [];
  let keys = 0;
  for (const chunk of chunks) {
    const count = sinkCounts[chunk] as number;
    if (pass.length > 0 && keys + count > budget) {
      passes.push(pass);
      pass = [];
      keys = 0;
    }
    pass.push(chunk);
    keys += count;
  }
  if (pass.length > 0) passes.push(pass);
  return passes;
}

function merge(into: TableComparison, part: TableComparison, limit: number): void {
  into.missing += part.missing;
  into.extra += part.extra;
  into.different += part.different;
  into.partial += part.partial;
  for (const [list, more] of [
    [into.missingKeys, part.missingKeys],
    [into.extraKeys, part.extraKeys],
    [into.differentKeys, part.differentKeys],
  ] as const)
    for (const key of more) if (list.length < limit) list.push(key);
  Object.assign(into.sourceValues, part.sourceValues);
}

export async function verifyKeyedTable(
  input: KeyedTableInput,
): Promise<{ comparison: TableComparison; outcome: ReplayOutcome }> {
  const { name, source, streamSource, reader, replay, upTo, limit, showValues } = input;
  // Sized for the source's estimate up front: growing a 10M-key table doubles it while the old
  // arrays are still held (the peak of a 10M-row verify).
  let table: RowHashTable | undefined = new RowHashTable(Math.min(Math.ceil(input.estimate * 1.6), 1 << 25));
  const outcome = await reader.replayTable(replay, upTo, table);
  const chunks = chunkCountFor(Math.max(table.size, input.estimate));
  const sinkSums = table.sums(chunks);
  table = undefined; // the source pass needs the sums only

  const summer = new ChunkSummer(source, chunks);
  await streamSource((rows) => summer.add(rows));
  const sourceSums = summer.sums;

  const result = emptyComparison(name, true, sinkSums.total);
  result.sourceRows = sourceSums.total;
  result.chunks = chunks;
  const differing = sourceSums.differing(sinkSums);
  result.chunksDifferent = differing.length;
  for (const pass of drillPasses(differing, sinkSums.counts, DRILL_KEYS)) {
    input.onDrill?.(pass);
    const selected = new Uint8Array(chunks);
    for (const chunk of pass) selected[chunk] = 1;
    const state = new KeyedState({ chunks, selected });
    // An absent table holds nothing: no replay; every source row of the pass is missing.
    if (outcome.kind === 'replayed') await reader.replayTable(replay, upTo, state);
    const comparer = new TableComparer(name, source, state, limit, showValues);
    await streamSource((rows) => comparer.add(rows));
    merge(result, comparer.finish(), limit);
  }
  return { comparison: result, outcome };
}
