/**
 * The source side of a verify's comparison. ChunkSummer: the first pass of a keyed table, every
 * source row reduced to its key hash and row hash and summed per chunk (chunks.ts).
 *
 * TableComparer: the drill-down, the source rows (of the chunks drilled into) against the sink's
 * replayed state of them (sink-state.ts), key by key: each source row's key is looked up and taken
 * out of the state; a key the state lacks is missing, a row hash that differs is different; the
 * keys left in the state afterwards are extra. Exact per key, memory bounded by the sink state.
 *
 * Keyless tables compare as multisets of row hashes: a source row takes one sink row of its hash
 * (missing when none is left); sink rows left are extra. They have no keys to list.
 */
import { TopicRegistry } from '../sinks/batch.ts';
import { EventBatchBuilder } from '../sinks/batch-builder.ts';
import type { CopyRow } from '../snapshot/copy-text.ts';
import { chunkOf, ChunkSums, keyHashOf } from './chunks.ts';
import { hashBytes } from './hash.ts';
import { KeyedState, shownKey, type KeylessState } from './sink-state.ts';
import { serializeRows, serializeWithPlaceholders, type SourceTable } from './source-snapshot.ts';

/** One table's outcome. `*Keys`: the first `limit` keys of each kind (UTF-8 key JSON). */
export interface TableComparison {
  readonly table: string;
  readonly keyed: boolean;
  sourceRows: number;
  sinkRows: number;
  /** Chunks whose row count and checksum were compared (keyed tables; 0 for keyless ones). */
  chunks: number;
  /** Chunks whose count or checksum differed, drilled into key by key. */
  chunksDifferent: number;
  missing: number;
  extra: number;
  different: number;
  /** Keys whose last event left TOAST columns as the placeholder: those columns were not compared. */
  partial: number;
  readonly missingKeys: string[];
  readonly extraKeys: string[];
  readonly differentKeys: string[];
  /** With --show-values: the source row of the listed missing and different keys (key -> row JSON). */
  readonly sourceValues: Record<string, string>;
}

export function emptyComparison(table: string, keyed: boolean, sinkRows: number): TableComparison {
  return {
    table,
    keyed,
    sourceRows: 0,
    sinkRows,
    chunks: 0,
    chunksDifferent: 0,
    missing: 0,
    extra: 0,
    different: 0,
    partial: 0,
    missingKeys: [],
    extraKeys: [],
    differentKeys: [],
    sourceValues: {},
  };
}

/** Sums a keyed table's source rows per chunk (the first pass). */
export class ChunkSummer {
  readonly sums: ChunkSums;
  private readonly source: SourceTable;
  private readonly builder = new EventBatchBuilder(new TopicRegistry(), 1 << 20, 8192);

  constructor(source: SourceTable, chunks: number) {
    this.source = source;
    this.sums = new ChunkSums(chunks);
  }

  /** One batch of source rows (in any order). */
  add(rows: readonly CopyRow[]): void {
    const batch = serializeRows(this.source, rows, this.builder);
    const data = batch.data;
    const sums = this.sums;
    for (let i = 0; i < rows.length; i++)
      sums.add(
        keyHashOf(data, batch.start(2 * i), batch.end(2 * i) - 1),
        hashBytes(data, batch.start(2 * i + 1), batch.end(2 * i + 1) - 1),
      );
  }
}

/** Folds source rows into a comparison against `state`; call `finish` after the last rows. */
export class TableComparer {
  readonly result: TableComparison;
  private readonly source: SourceTable;
  private readonly state: KeyedState | KeylessState;
  private readonly limit: number;
  private readonly showValues: boolean;
  private readonly builder = new EventBatchBuilder(new TopicRegistry(), 1 << 20, 8192);

  /** A KeyedState with a filter compares the source rows of its chunks only. */
  constructor(
    table: string,
    source: SourceTable,
    state: KeyedState | KeylessState,
    limit: number,
    showValues: boolean,
  ) {
    this.source = source;
    this.state = state;
    this.limit = limit;
    this.showValues = showValues;
    this.result = emptyComparison(table, source.keyed, state.size);
  }

  private note(list: string[], key: string, data: Buffer, start: number, end: number): void {
    if (list.length >= this.limit) return;
    const shown = shownKey(key);
    list.push(shown);
    if (this.showValues) this.result.sourceValues[shown] = `${data.toString('utf8', start, end)}}`;
  }

  /** One batch of source rows (in any order). */
  add(rows: readonly CopyRow[]): void {
    const batch = serializeRows(this.source, rows, this.builder);
    const data = batch.data;
    const result = this.result;
    const state = this.state;
    if (!(state instanceof KeyedState)) {
      result.sourceRows += rows.length;
      for (let i = 0; i < batch.count; i++)
        if (!state.take(hashBytes(data, batch.start(i), batch.end(i) - 1))) result.missing++;
      return;
    }
    const filter = state.filter;
    for (let i = 0; i < rows.length; i++) {
      const keyStart = batch.start(2 * i);
      const keyEnd = batch.end(2 * i) - 1;
      if (filter !== undefined && filter.selected[chunkOf(keyHashOf(data, keyStart, keyEnd), filter.chunks)] !== 1)
        continue;
      result.sourceRows++;
      const key = data.toString('latin1', keyStart, keyEnd);
      const rowStart = batch.start(2 * i + 1);
      const rowEnd = batch.end(2 * i + 1) - 1;
      const partial = state.partial.size > 0 ? state.partial.get(key) : undefined;
      const sinkHash = state.take(key);
      if (sinkHash === undefined) {
        result.missing++;
        this.note(result.missingKeys, key, data, rowStart, rowEnd);
        continue;
      }
      let sourceHash: number;
      if (partial === undefined) sourceHash = hashBytes(data, rowStart, rowEnd);
      else {
        result.partial++;
        const bytes = serializeWithPlaceholders(this.source, rows[i] as CopyRow, partial);
        sourceHash = hashBytes(bytes, 0, bytes.length);
      }
      if (sourceHash !== sinkHash) {
        result.different++;
        this.note(result.differentKeys, key, data, rowStart, rowEnd);
      }
    }
  }

  /** Counts (and lists) what the sink holds beyond the source. */
  finish(): TableComparison {
    const state = this.state;
    this.result.extra = state.size;
    if (state instanceof KeyedState)
      for (const key of state.remaining()) {
        if (this.result.extraKeys.length >= this.limit) break;
        this.result.extraKeys.push(shownKey(key));
      }
    return this.result;
  }
}
