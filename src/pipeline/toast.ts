/**
 * `toast.mode` for unchanged TOASTed columns (PostgreSQL does not send a large value an update left
 * unchanged, under REPLICA IDENTITY DEFAULT or INDEX):
 *
 * - `placeholder` (default): the value `__pgcdc_unavailable_value`, and the column named in
 *   `source.unavailable_columns`. The serializer does this itself; no ToastPolicy exists then, so
 *   the default hot path pays nothing.
 * - `omit`: the column is left out of `after` (and `before`) and named in
 *   `source.unavailable_columns`. Written by a serializer for the table without those columns,
 *   built once per table and set of omitted columns.
 * - `fill`: the last value seen for that row and column (ToastStore); a cold miss (a row not seen
 *   since the store began, or evicted) falls back to the placeholder, so it is still named in
 *   `source.unavailable_columns`, and is counted in the log.
 */
import { sideFilesBase } from '../offsets/open.ts';
import { UNCHANGED_TOAST, type TupleData, type TupleValue } from '../protocol/messages.ts';
import type { Logger } from '../core/log.ts';
import type { TopicRegistry } from '../sinks/batch.ts';
import type { TableSchema } from '../source/relations.ts';
import { FILL_MIN_LENGTH, ToastStore, type StoredRow } from '../source/toast-store.ts';
import { TableSerializer, unavailableColumnsField } from '../envelope/json.ts';
import type { TopicNaming } from '../envelope/topics.ts';
import type { Config } from '../config.ts';
import { parseLsn } from '../protocol/lsn.ts';

/**
 * The fill store next to the offsets file (`<offsets>.toast`, offsets/open.ts sideFilesBase), at the
 * state of `resumeLsn` (the stored checkpoint being resumed from; undefined starts empty). Undefined
 * unless `toast.mode` is fill.
 */
export async function openToastStore(config: Config, resumeLsn: string | undefined): Promise<ToastStore | undefined> {
  if (config.toast.mode !== 'fill') return undefined;
  return ToastStore.open(
    `${sideFilesBase(config.offsets, config.slot, config.sink.kind)}.toast`,
    config.toast.fillMaxBytes,
    resumeLsn === undefined ? undefined : parseLsn(resumeLsn),
  );
}

/** What to write for one row. */
export interface ToastResolution {
  serializer: TableSerializer;
  before: TupleData | null;
  after: TupleData;
  /** `,"unavailable_columns":[...]` when the serializer cannot tell by itself (omit), else null. */
  unavailable: Buffer | null;
}

interface OmitVariant {
  readonly serializer: TableSerializer;
  /** Indexes of the kept columns in the full tuple. */
  readonly kept: readonly number[];
  readonly unavailable: Buffer;
}

export class ToastPolicy {
  private readonly mode: 'omit' | 'fill';
  private readonly store: ToastStore | undefined;
  private readonly naming: TopicNaming;
  private readonly topics: TopicRegistry;
  private readonly log: Logger;
  private readonly variants = new WeakMap<TableSerializer, Map<string, OmitVariant>>();

  constructor(
    mode: 'omit' | 'fill',
    store: ToastStore | undefined,
    naming: TopicNaming,
    topics: TopicRegistry,
    log: Logger,
  ) {
    this.mode = mode;
    this.store = store;
    this.naming = naming;
    this.topics = topics;
    this.log = log;
  }

  /** An insert: fill mode remembers its large values. */
  inserted(s: TableSerializer, row: TupleData): void {
    if (this.store) this.remember(s.table, row);
  }

  /** An update's rows as they must be written. `oldKey` is the old key or old row, when sent. */
  updated(s: TableSerializer, before: TupleData | null, after: TupleData, oldKey: TupleData | null): ToastResolution {
    const r: ToastResolution = { serializer: s, before, after, unavailable: null };
    const store = this.store;
    if (store) {
      if (oldKey) {
        const previous = rowKey(s.table, oldKey);
        if (previous !== undefined && previous !== rowKey(s.table, after)) store.delete(previous);
      }
      if (after.includes(UNCHANGED_TOAST)) r.after = this.fill(s.table, after);
      this.remember(s.table, r.after);
      return r;
    }
    if (!after.includes(UNCHANGED_TOAST)) return r;
    const variant = this.omitVariant(s, after);
    r.serializer = variant.serializer;
    r.after = variant.kept.map((i) => after[i] ?? null);
    r.before = before === null ? null : variant.kept.map((i) => before[i] ?? null);
    r.unavailable = variant.unavailable;
    return r;
  }

  deleted(s: TableSerializer, old: TupleData): void {
    if (!this.store) return;
    const key = rowKey(s.table, old);
    if (key !== undefined) this.store.delete(key);
  }

  truncated(s: TableSerializer): void {
    this.store?.truncate(tableName(s.table));
  }

  /** The transaction whose rows were just handled committed at `endLsn`. */
  committed(endLsn: number): void {
    this.store?.commit(endLsn);
  }

  private fill(table: TableSchema, after: TupleData): TupleData {
    const store = this.store as ToastStore;
    const key = rowKey(table, after);
    const stored = key === undefined ? undefined : store.get(key);
    let missed = 0;
    const filled = after.map((value: TupleValue, i): TupleValue => {
      if (value !== UNCHANGED_TOAST) return value;
      const name = table.columns[i]?.name ?? '';
      const known = stored?.[name];
      if (known !== undefined) {
        store.hits++;
        return known;
      }
      missed++;
      return value;
    });
    if (missed > 0) {
      store.misses += missed;
      // Powers of two: the first misses are visible, a lasting stream of them does not flood the log.
      if ((store.misses & (store.misses - 1)) === 0) {
        this.log.info(
          { table: tableName(table), misses: store.misses, hits: store.hits, ...store.size },
          'TOAST fill: cold miss, the placeholder was sent instead (the row was not seen since the store ' +
            'began, or was evicted)',
        );
      }
    }
    return filled;
  }

  /** Replaces the row's entry with its current large values (none: the entry goes). */
  private remember(table: TableSchema, row: TupleData): void {
    const store = this.store as ToastStore;
    const key = rowKey(table, row);
    if (key === undefined) return;
    let entry: Record<string, string> | undefined;
    const keyIndexes = table.keyIndexes;
    for (let i = 0; i < row.length; i++) {
      const value = row[i];
      if (typeof value !== 'string' || value.length < FILL_MIN_LENGTH || keyIndexes.includes(i)) continue;
      (entry ??= {})[table.columns[i]?.name ?? ''] = value;
    }
    if (entry) store.put(key, entry satisfies StoredRow);
    else store.delete(key);
  }

  private omitVariant(s: TableSerializer, after: TupleData): OmitVariant {
    let perTable = this.variants.get(s);
    if (!perTable) this.variants.set(s, (perTable = new Map<string, OmitVariant>()));
    const keyIndexes = s.table.keyIndexes;
    let mask = '';
    for (let i = 0; i < after.length; i++) mask += after[i] === UNCHANGED_TOAST && !keyIndexes.includes(i) ? '1' : '0';
    const found = perTable.get(mask);
    if (found) return found;
    const kept: number[] = [];
    const omitted: string[] = [];
    s.table.columns.forEach((c, i) => {
      if (mask[i] === '1') omitted.push(c.name);
      else kept.push(i);
    });
    const table: TableSchema = {
      ...s.table,
      columns: kept.map((i) => s.table.columns[i] as TableSchema['columns'][number]),
      keyIndexes: keyIndexes.map((k) => kept.indexOf(k)),
    };
    const variant = {
      // The schemas (json-with-schema) stay the whole table's: the omitted fields read as null.
      serializer: new TableSerializer(table, this.naming, this.topics, s.table),
      kept,
      unavailable: unavailableColumnsField(omitted),
    };
    perTable.set(mask, variant);
    return variant;
  }
}

function tableName(table: TableSchema): string {
  return `${table.schema}.${table.table}`;
}

/** The store key of a row: its table and key values; undefined for keyless tables. */
function rowKey(table: TableSchema, row: TupleData): string | undefined {
  if (table.keyIndexes.length === 0) return undefined;
  const values: (string | null)[] = [];
  for (const i of table.keyIndexes) {
    const value = row[i];
    if (value === UNCHANGED_TOAST || value === undefined) return undefined;
    values.push(value === null || typeof value === 'string' ? value : value.toString('base64'));
  }
  return ToastStore.key(tableName(table), JSON.stringify(values));
}
