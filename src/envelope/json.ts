/**
 * Per-table precompiled serializers for change events (architecture.md section 4). JSON is built
 * by concatenating pre-escaped fragments and the column encoders' output; no event object is
 * built and stringified, because serialisation is the main cost of the whole pipeline.
 *
 * Line layout (one line per event):
 * {"id":"<commit_lsn>:<ordinal>","topic":"<topic>","key":{..}|null,
 *  "value":{"before":{..}|null,"after":{..}|null,"source":{..},"op":"c|u|d|t|m","ts_ms":N,
 *           "transaction":{"id":"<xid>:<commit_lsn>","total_order":N,"data_collection_order":N}}}
 */
import { UNCHANGED_TOAST, type TupleData } from '../protocol/messages.ts';
import type { TableSchema } from '../source/relations.ts';

export const PGCDC_VERSION = '0.1.0';
export const UNAVAILABLE_VALUE = '__pgcdc_unavailable_value';
const UNAVAILABLE_JSON = JSON.stringify(UNAVAILABLE_VALUE);

export type Op = 'c' | 'u' | 'd' | 'r' | 't' | 'm';

/** What is the same for every event of one transaction. */
export interface TransactionContext {
  readonly xid: number;
  /** The commit LSN as "X/Y" (also the first half of every event id). */
  readonly commitLsn: string;
  /** Commit time, Unix milliseconds. */
  readonly commitTimeMs: number;
}

/** Where an event sits: its source LSN and its 1-based orders in the transaction. */
export interface EventPosition {
  readonly lsn: number;
  readonly totalOrder: number;
  readonly dataCollectionOrder: number;
}

export interface TopicNaming {
  readonly prefix: string;
  readonly database: string;
  readonly naming: 'prefix' | 'database';
}

export function topicFor(naming: TopicNaming, schema: string, table: string): string {
  const base = `${naming.prefix}.${schema}.${table}`;
  return naming.naming === 'database' ? `${naming.database}_${base}` : base;
}

/** Serializes the events of one table. Rebuilt whenever its TableSchema changes. */
export class TableSerializer {
  readonly topic: string;
  readonly table: TableSchema;
  private readonly topicJson: string;
  /** `{"a":`, `,"b":`, ... one per column. */
  private readonly columnPrefixes: string[];
  private readonly keyPrefixes: string[];
  private readonly sourcePrefix: string;

  constructor(table: TableSchema, naming: TopicNaming) {
    this.table = table;
    this.topic = topicFor(naming, table.schema, table.table);
    this.topicJson = JSON.stringify(this.topic);
    this.columnPrefixes = table.columns.map((c, i) => `${i === 0 ? '{' : ','}${JSON.stringify(c.name)}:`);
    this.keyPrefixes = table.keyIndexes.map((index, i) => `${i === 0 ? '{' : ','}${JSON.stringify(table.columns[index]?.name ?? '')}:`);
    this.sourcePrefix =
      `{"version":"${PGCDC_VERSION}","connector":"postgresql","name":${JSON.stringify(naming.prefix)},` +
      `"db":${JSON.stringify(naming.database)},"schema":${JSON.stringify(table.schema)},"table":${JSON.stringify(table.table)},` +
      `"snapshot":"false","txId":`;
  }

  /** The row as a JSON object. Unchanged TOAST values become the placeholder. */
  row(tuple: TupleData): string {
    const columns = this.table.columns;
    const prefixes = this.columnPrefixes;
    if (columns.length === 0) return '{}';
    let out = '';
    for (let i = 0; i < columns.length; i++) {
      const value = tuple[i];
      out += prefixes[i];
      if (value === null || value === undefined) out += 'null';
      else if (typeof value === 'string') out += (columns[i] as TableSchema['columns'][number]).encode(value);
      else if (value === UNCHANGED_TOAST) out += UNAVAILABLE_JSON;
      else out += JSON.stringify(value.toString('base64'));
    }
    return out + '}';
  }

  /** The key object, or `null` for keyless tables. */
  key(tuple: TupleData): string {
    const indexes = this.table.keyIndexes;
    if (indexes.length === 0) return 'null';
    let out = '';
    for (let i = 0; i < indexes.length; i++) {
      const index = indexes[i] as number;
      const value = tuple[index];
      out += this.keyPrefixes[i];
      if (value === null || value === undefined || value === UNCHANGED_TOAST) out += 'null';
      else if (typeof value === 'string') out += (this.table.columns[index] as TableSchema['columns'][number]).encode(value);
      else out += JSON.stringify(value.toString('base64'));
    }
    return out + '}';
  }

  /** A whole event line. `before`/`after` are JSON (from row()) or 'null'. */
  line(op: Op, key: string, before: string, after: string, tx: TransactionContext, pos: EventPosition, nowMs: number): string {
    return (
      `{"id":"${tx.commitLsn}:${pos.totalOrder - 1}","topic":${this.topicJson},"key":${key},` +
      `"value":{"before":${before},"after":${after},"source":${this.sourcePrefix}${tx.xid},"lsn":${pos.lsn},` +
      `"commit_lsn":"${tx.commitLsn}","ts_ms":${tx.commitTimeMs}},"op":"${op}","ts_ms":${nowMs},` +
      `"transaction":{"id":"${tx.xid}:${tx.commitLsn}","total_order":${pos.totalOrder},"data_collection_order":${pos.dataCollectionOrder}}}}`
    );
  }
}
