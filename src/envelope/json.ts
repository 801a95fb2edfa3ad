/**
 * Per-table precompiled serializers for change events (ARCHITECTURE.md, the hot path). Every constant
 * part of a line is encoded to bytes once per table; an event is written straight into the
 * delivery batch (sinks/batch.ts) as those fragments plus the column encoders' output. No line
 * string is ever built: serialisation is the main cost of the pipeline, and building then encoding
 * a rope of 30 pieces per event cost more than everything else together (bench/stream.ts).
 *
 * Line layout (one line per event):
 * {"id":"<commit_lsn>:<ordinal>","topic":"<topic>","key":{..}|null,["headers":{"<name>":<json>},]
 *  "value":{"before":{..}|null,"after":{..}|null,"source":{..},"op":"c|u|d|t|m","ts_ms":N,"ts_us":N,"ts_ns":N,
 *           "transaction":{"id":"<xid>:<commit_lsn>","total_order":N,"data_collection_order":N}}}
 *
 * With `envelope.format: json-with-schema` the key and the value are each `{"schema":...,"payload":...}`
 * (schemas.ts); "headers" only appears on the two events of a primary-key change (`writeKeyChange`),
 * always between "key" and "value", so "value" runs to the end of the line (the Kafka sink relies on it).
 */
import { UNCHANGED_TOAST, type TupleData } from '../protocol/messages.ts';
import type { TableSchema } from '../source/relations.ts';
import type { TopicRegistry } from '../sinks/batch.ts';
import { topicName, type EnvelopeSettings, type TopicNaming } from './topics.ts';
import { columnValueSchema, envelopeSchema, keySchema, payloadOpen, placeholderJson } from './schemas.ts';
import { commitTail, nowAndTransaction, subMillis, type Op, type TransactionContext } from './transaction-context.ts';

export const PGCDC_VERSION = '0.1.0';
/** The default `toast.placeholder`; Debezium's is `__debezium_unavailable_value`. */
export const UNAVAILABLE_VALUE = '__pgcdc_unavailable_value';
/** Debezium's header names on the two events of a primary-key change. */
export const NEW_KEY_HEADER = '__debezium.newkey';
export const OLD_KEY_HEADER = '__debezium.oldkey';

export { transactionContext, sequenceOpen, type Op, type TransactionContext } from './transaction-context.ts';

const DEFAULT_SETTINGS: EnvelopeSettings = { format: 'json', unavailableValue: UNAVAILABLE_VALUE };

/** Where serialized bytes go: implemented by EventBatchBuilder. */
export interface LineWriter {
  raw(bytes: Uint8Array): void;
  text(s: string): void;
  jsonString(s: string): void;
  uint(value: number): void;
}

/** Per table within one transaction: its event count and its source block head. */
export interface TableInTransaction {
  count: number;
  /** `,"source":{...,"txId":<xid>,"lsn":` after `"after":null` */
  readonly sourceHead: Buffer;
  /** The same after an open `after` object: `},"source":...` */
  readonly closeSourceHead: Buffer;
}

/** `{"id":"<prefix>`: the start of the ids of read events, ended by an ordinal (TableSerializer.writeRead). */
export function readIdHead(prefix: string): Buffer {
  return bytes(`{"id":${JSON.stringify(prefix).slice(0, -1)}`);
}

const bytes = (text: string): Buffer => Buffer.from(text, 'utf8');
const NULL = bytes('null');
const DATA_COLLECTION_ORDER = bytes(',"data_collection_order":');
const OPEN_OBJECT = bytes('{');
/** Ends `source.sequence` after the event's LSN. */
const SEQUENCE_CLOSE = bytes('\\"]"');

// Rows are written without their closing brace; the next fragment closes them. Fewer, longer
// fragments: each write into the batch costs about the same whatever its length.
const VALUE_OPEN = {
  /** insert, and update without an old row */
  noBefore: '{"before":null,"after":',
  /** update or delete with an old row */
  before: '{"before":',
  /** truncate */
  nothing: '{"before":null,"after":null',
};
const BEFORE_THEN_AFTER = bytes('},"after":');
/** Closes the key object of a header and the headers object. */
const HEADERS_CLOSE = bytes('}}');
const BEFORE_THEN_NO_AFTER = bytes('},"after":null');

/** The source field naming columns whose value is not in the event (see TOAST in docs/events.md). */
export function unavailableColumnsField(names: readonly string[]): Buffer {
  return bytes(`,"unavailable_columns":${JSON.stringify(names)}`);
}

interface ValueOpenings {
  readonly noBefore: { readonly open: Buffer; readonly none: Buffer };
  readonly before: { readonly open: Buffer; readonly none: Buffer };
  readonly nothing: { readonly open: Buffer; readonly none: Buffer };
}

/** Serializes the events of one table. Rebuilt whenever its TableSchema changes. */
export class TableSerializer {
  readonly topic: string;
  /** The topic's number in the delivery's registry. */
  readonly topicNumber: number;
  readonly table: TableSchema;
  /** `","topic":"<topic>","key":` */
  private readonly topicKey: Buffer;
  /** `{"a":`, `,"b":`, ... one per column. */
  private readonly columnPrefixes: Buffer[];
  private readonly keyPrefixes: Buffer[];
  /** Per column: what stands for its unchanged TOAST value (placeholderJson). */
  private readonly placeholders: Buffer[];
  /** `,"source":{"version":...,"txId":` as text: completed per transaction by `inTransaction`. */
  private readonly sourceHead: string;
  /** The source head of snapshot reads: "snapshot":"true" / "last". */
  private readonly readHead: string;
  private readonly lastReadHead: string;
  private readonly incrementalReadHead: string;
  /** topicKey plus the first key column's name: `...,"key":{"id":` (with a schema: `{"schema":..,"payload":{"id":`). */
  private readonly topicKeyOpen: Buffer;
  /** What follows the key, with the first column name of the row after it already in place. */
  private readonly afterKey: ValueOpenings;
  /** The same without closing the key first (after the headers of a key change). */
  private readonly valueOpen: ValueOpenings;
  /** `}` after the key fields (`}}` with a schema). */
  private readonly keyClose: Buffer;
  /** `,"headers":{"__debezium.newkey":{"id":` and the same for the old key. */
  private readonly newKeyHeaderOpen: Buffer;
  private readonly oldKeyHeaderOpen: Buffer;
  private readonly beforeThenAfter: Buffer;
  /** `}}}`: the transaction, the value and the line (`}}}}` with the value's schema wrapper). */
  private readonly close: Buffer;
  private readonly withSchema: boolean;

  /**
   * `schemaTable` is the table the schemas describe when `table` is a variant with columns left out
   * (toast.mode omit): the topic keeps one schema, and a missing field reads as null.
   */
  constructor(table: TableSchema, naming: TopicNaming, topics: TopicRegistry, schemaTable: TableSchema = table) {
    const settings = naming.envelope ?? DEFAULT_SETTINGS;
    const withSchema = settings.format === 'json-with-schema';
    this.withSchema = withSchema;
    this.table = table;
    this.topic = topicName(naming, table);
    this.topicNumber = topics.number(this.topic);
    this.topicKey = bytes(`","topic":${JSON.stringify(this.topic)},"key":`);
    this.columnPrefixes = table.columns.map((c, i) => bytes(`${i === 0 ? '{' : ','}${JSON.stringify(c.name)}:`));
    this.keyPrefixes = table.keyIndexes.map((index, i) =>
      bytes(`${i === 0 ? '{' : ','}${JSON.stringify(table.columns[index]?.name ?? '')}:`),
    );
    this.placeholders = table.columns.map((c) => bytes(placeholderJson(settings, columnValueSchema(c))));
    const firstColumn = this.columnPrefixes[0] ?? OPEN_OBJECT;
    const firstKey = this.keyPrefixes[0] ?? OPEN_OBJECT;
    const keyOpen = withSchema ? payloadOpen(keySchema(this.topic, schemaTable)) : '';
    const valueHead = `,"value":${withSchema ? payloadOpen(envelopeSchema(this.topic, schemaTable)) : ''}`;
    this.topicKeyOpen = Buffer.concat([this.topicKey, bytes(keyOpen), firstKey]);
    this.keyClose = bytes(withSchema ? '}}' : '}');
    this.close = bytes(withSchema ? '}}}}' : '}}}');
    const opening = (prefix: string): ValueOpenings => {
      const variant = (row: string, first: Buffer | null) => {
        const open = bytes(`${prefix}${valueHead}${row}`);
        return first === null ? open : Buffer.concat([open, first]);
      };
      const none = (row: string, first: Buffer | null) => {
        const head = bytes(`null${valueHead}${row}`);
        return first === null ? head : Buffer.concat([head, first]);
      };
      return {
        noBefore: { open: variant(VALUE_OPEN.noBefore, firstColumn), none: none(VALUE_OPEN.noBefore, firstColumn) },
        before: { open: variant(VALUE_OPEN.before, firstColumn), none: none(VALUE_OPEN.before, firstColumn) },
        nothing: { open: variant(VALUE_OPEN.nothing, null), none: none(VALUE_OPEN.nothing, null) },
      };
    };
    this.afterKey = opening(withSchema ? '}}' : '}');
    this.valueOpen = opening('');
    const header = (name: string): Buffer => Buffer.concat([bytes(`,"headers":{${JSON.stringify(name)}:`), firstKey]);
    this.newKeyHeaderOpen = header(NEW_KEY_HEADER);
    this.oldKeyHeaderOpen = header(OLD_KEY_HEADER);
    this.beforeThenAfter = Buffer.concat([BEFORE_THEN_AFTER, firstColumn]);
    this.sourceHead =
      `,"source":{"version":"${PGCDC_VERSION}","connector":"postgresql","name":${JSON.stringify(naming.prefix)},` +
      `"db":${JSON.stringify(naming.database)},"schema":${JSON.stringify(table.schema)},` +
      `"table":${JSON.stringify(table.table)},` +
      `"snapshot":"false","txId":`;
    this.readHead = this.sourceHead.replace('"snapshot":"false"', '"snapshot":"true"');
    this.lastReadHead = this.sourceHead.replace('"snapshot":"false"', '"snapshot":"last"');
    this.incrementalReadHead = this.sourceHead.replace('"snapshot":"false"', '"snapshot":"incremental"');
  }

  /** This table's per-transaction state, created at its first event in `tx`. */
  inTransaction(tx: TransactionContext): TableInTransaction {
    const head = `${this.sourceHead}${tx.xid},"lsn":`;
    return { count: 0, sourceHead: bytes(head), closeSourceHead: bytes(`}${head}`) };
  }

  /** Writes one whole event line (without the newline). `key` is the tuple the key is read from. */
  write(
    w: LineWriter,
    op: Op,
    key: TupleData | null,
    before: TupleData | null,
    after: TupleData | null,
    tx: TransactionContext,
    inTx: TableInTransaction,
    lsn: number,
    totalOrder: number,
    nowMs: number,
    unavailable: Buffer | null = null,
  ): void {
    w.raw(tx.idOpen);
    w.uint(totalOrder - 1);
    const keyed = key !== null && this.table.keyIndexes.length > 0;
    if (keyed) {
      w.raw(this.topicKeyOpen);
      this.writeFields(w, key, this.table.keyIndexes, this.keyPrefixes);
    } else w.raw(this.topicKey);
    const next =
      after === null && before === null
        ? this.afterKey.nothing
        : before === null
          ? this.afterKey.noBefore
          : this.afterKey.before;
    w.raw(keyed ? next.open : next.none);
    this.writeRest(w, op, before, after, tx, inTx, lsn, totalOrder, nowMs, unavailable);
  }

  /**
   * One of the two events a primary-key change becomes, as Debezium writes it: the delete of the
   * old key (`op` d: key and before from `old`, header `__debezium.newkey` with the key of `row`),
   * or the create of the new key (`op` c: key and after from `row`, header `__debezium.oldkey` with
   * the key of `old`). The header holds the key's JSON (its payload under json-with-schema).
   */
  writeKeyChange(
    w: LineWriter,
    op: 'd' | 'c',
    old: TupleData,
    row: TupleData,
    tx: TransactionContext,
    inTx: TableInTransaction,
    lsn: number,
    totalOrder: number,
    nowMs: number,
    unavailable: Buffer | null = null,
  ): void {
    const keyIndexes = this.table.keyIndexes;
    w.raw(tx.idOpen);
    w.uint(totalOrder - 1);
    w.raw(this.topicKeyOpen);
    this.writeFields(w, op === 'd' ? old : row, keyIndexes, this.keyPrefixes);
    w.raw(this.keyClose);
    w.raw(op === 'd' ? this.newKeyHeaderOpen : this.oldKeyHeaderOpen);
    this.writeFields(w, op === 'd' ? row : old, keyIndexes, this.keyPrefixes);
    w.raw(HEADERS_CLOSE);
    if (op === 'd') {
      w.raw(this.valueOpen.before.open);
      this.writeRest(w, op, old, null, tx, inTx, lsn, totalOrder, nowMs, null);
    } else {
      w.raw(this.valueOpen.noBefore.open);
      this.writeRest(w, op, null, row, tx, inTx, lsn, totalOrder, nowMs, unavailable);
    }
  }

  /** The rows (their first field name already written), the source block and the tail. */
  private writeRest(
    w: LineWriter,
    op: Op,
    before: TupleData | null,
    after: TupleData | null,
    tx: TransactionContext,
    inTx: TableInTransaction,
    lsn: number,
    totalOrder: number,
    nowMs: number,
    unavailable: Buffer | null,
  ): void {
    if (before !== null) {
      this.writeFields(w, before, null, this.columnPrefixes);
      w.raw(after === null ? BEFORE_THEN_NO_AFTER : this.beforeThenAfter);
    }
    let placeholders = false;
    if (after !== null) {
      placeholders = this.writeFields(w, after, null, this.columnPrefixes);
      w.raw(inTx.closeSourceHead);
    } else w.raw(inTx.sourceHead);
    w.uint(lsn);
    w.raw(tx.sequenceOpen);
    w.uint(lsn);
    w.raw(SEQUENCE_CLOSE);
    // Rare: unchanged TOASTed columns are named in the source block (toast.mode, docs/events.md).
    if (unavailable !== null) w.raw(unavailable);
    else if (placeholders && after !== null) w.raw(this.unavailableColumns(after));
    w.raw(commitTail(tx, op));
    w.raw(nowAndTransaction(tx, nowMs));
    w.uint(totalOrder);
    w.raw(DATA_COLLECTION_ORDER);
    w.uint(inTx.count);
    w.raw(this.close);
  }

  /**
   * A snapshot read (op 'r'): the row as it was at the snapshot's point. The event id is `idHead`
   * (`{"id":"<prefix>`, see `readIdHead`) followed by `ordinal`; `tail` (see `readTail`) is
   * everything after the row, the same for a whole chunk. Snapshot reads belong to no transaction.
   */
  writeRead(w: LineWriter, row: TupleData, idHead: Buffer, ordinal: number, tail: Buffer): void {
    const keyed = this.table.keyIndexes.length > 0;
    w.raw(idHead);
    w.uint(ordinal);
    if (keyed) {
      w.raw(this.topicKeyOpen);
      this.writeFields(w, row, this.table.keyIndexes, this.keyPrefixes);
    } else w.raw(this.topicKey);
    w.raw(keyed ? this.afterKey.noBefore.open : this.afterKey.noBefore.none);
    this.writeFields(w, row, null, this.columnPrefixes);
    w.raw(tail);
  }

  /**
   * What follows the row of a read event: the source block with Debezium's snapshot marker
   * ("true", "last" on the snapshot's final row, "incremental" for online snapshots), the position
   * `lsn` the row stands at (also the second half of `source.sequence`; reads follow no commit),
   * and the processing time.
   */
  readTail(snapshot: 'true' | 'last' | 'incremental', lsn: number, lsnText: string, nowMs: number): Buffer {
    const head =
      snapshot === 'true' ? this.readHead : snapshot === 'last' ? this.lastReadHead : this.incrementalReadHead;
    return bytes(
      `}${head}null,"lsn":${lsn},"sequence":"[null,\\"${lsn}\\"]","commit_lsn":"${lsnText}","ts_ms":${nowMs}` +
        `${subMillis(nowMs)},"xmin":null},"op":"r","ts_ms":${nowMs}${subMillis(nowMs)},"transaction":null}}` +
        (this.withSchema ? '}' : ''),
    );
  }

  /** `,"unavailable_columns":["a",...]`: the columns of `tuple` that are unchanged TOAST. */
  unavailableColumns(tuple: TupleData): Buffer {
    const names: string[] = [];
    this.table.columns.forEach((c, i) => {
      if (tuple[i] === UNCHANGED_TOAST) names.push(c.name);
    });
    return unavailableColumnsField(names);
  }

  /**
   * `v,"b":v,...` for every column or the `indexes` ones: the fields after the first name, without
   * the closing brace (the next fragment closes the object). Unchanged TOAST values become the
   * placeholder (null in a key). Returns whether a placeholder was written.
   */
  private writeFields(
    w: LineWriter,
    tuple: TupleData,
    indexes: readonly number[] | null,
    prefixes: readonly Buffer[],
  ): boolean {
    let placeholders = false;
    // The first field's name (or the lone `{` of an empty object) was written with the fragment before.
    const columns = this.table.columns;
    const n = indexes === null ? columns.length : indexes.length;
    for (let i = 0; i < n; i++) {
      const index = indexes === null ? i : (indexes[i] as number);
      if (i > 0) w.raw(prefixes[i] as Buffer);
      const value = tuple[index];
      if (value === null || value === undefined) w.raw(NULL);
      else if (typeof value === 'string') {
        const column = columns[index] as TableSchema['columns'][number];
        if (column.plainString) w.jsonString(value);
        else w.text(column.encode(value));
      } else if (value === UNCHANGED_TOAST) {
        w.raw(indexes === null ? (this.placeholders[index] as Buffer) : NULL);
        placeholders = true;
      } else w.text(JSON.stringify(value.toString('base64')));
    }
    return placeholders;
  }
}
