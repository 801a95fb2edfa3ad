/**
 * Compares one source table with the sink's replayed state of it (sink-state.ts), key by key: each
 * source row's key is looked up and taken out of the state; a key the state lacks is missing, a
 * row hash that differs is different; the keys left in the state afterwards are extra. One pass
 * over the source (a sequential scan), exact per key, memory bounded by the sink state.
 *
 * Keyless tables compare as multisets of row hashes: a source row takes one sink row of its hash
 * (missing when none is left); sink rows left are extra. They have no keys to list.
 */
import { EventBatchBuilder, TopicRegistry } from '../sinks/batch.ts';
import type { CopyRow } from '../snapshot/copy-text.ts';
import { hashBytes } from './hash.ts';
import { KeyedState, shownKey, type TableState } from './sink-state.ts';
import { serializeRows, serializeWithPlaceholders, type SourceTable } from './source-snapshot.ts';

/** One table's outcome. `*Keys`: the first `limit` keys of each kind (UTF-8 key JSON). */
export interface TableComparison {
  readonly table: string;
  readonly keyed: boolean;
  sourceRows: number;
  sinkRows: number;
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

/** Folds source rows into a comparison against `state`; call `finish` after the last rows. */
export class TableComparer {
  readonly result: TableComparison;
  private readonly source: SourceTable;
  private readonly state: TableState;
  private readonly limit: number;
  private readonly showValues: boolean;
  private readonly builder = new EventBatchBuilder(new TopicRegistry(), 1 << 20, 8192);

  constructor(table: string, source: SourceTable, state: TableState, limit: number, showValues: boolean) {
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
    result.sourceRows += rows.length;
    const state = this.state;
    if (!(state instanceof KeyedState)) {
      for (let i = 0; i < batch.count; i++)
        if (!state.take(hashBytes(data, batch.start(i), batch.end(i) - 1))) result.missing++;
      return;
    }
    for (let i = 0; i < rows.length; i++) {
      const keyStart = batch.start(2 * i);
      const key = data.toString('latin1', keyStart, batch.end(2 * i) - 1);
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
