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
 *
 * Shaping (docs/shaping.md): the table's rule (shaping.ts) is compiled into its RowWriter
 * (columns, masks, truncation) and topic; `envelope.type: flat` hands every write to a FlatWriter
 * (flat.ts), which keeps this line layout with the flat row as the value.
 */
import { CdcError } from '../core/errors.ts';
import type { TupleData } from '../protocol/messages.ts';
import type { TableSchema } from '../source/relations.ts';
import type { TopicRegistry } from '../sinks/batch.ts';
import { topicName, type EnvelopeSettings, type TopicNaming } from './topics.ts';
import { envelopeSchema, keySchema, payloadOpen } from './schemas.ts';
import { RowWriter, writeKeyChangeHead, type LineWriter, type RowSource } from './row-writer.ts';
import { FlatWriter } from './flat.ts';
import type { DroppableOp } from './shaping-config.ts';
import { commitTail, nowAndTransaction, subMillis, type Op, type TransactionContext } from './transaction-context.ts';

export const PGCDC_VERSION = '0.1.0';
/** The default `toast.placeholder`; Debezium's is `__debezium_unavailable_value`. */
export const UNAVAILABLE_VALUE = '__pgcdc_unavailable_value';
/** Debezium's header names on the two events of a primary-key change. */
export const NEW_KEY_HEADER = '__debezium.newkey';
export const OLD_KEY_HEADER = '__debezium.oldkey';

export { transactionContext, sequenceOpen, type Op, type TransactionContext } from './transaction-context.ts';

const DEFAULT_SETTINGS: EnvelopeSettings = { format: 'json', unavailableValue: UNAVAILABLE_VALUE };

export type { LineWriter } from './row-writer.ts';

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
const DATA_COLLECTION_ORDER = bytes(',"data_collection_order":');
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

/** The value of a recovery delete up to its source block (TableSerializer.writeKeyDelete). */
const KEY_DELETE_VALUE = Buffer.from(',"value":{"before":null,"after":null', 'utf8');

/** Serializes the events of one table. Rebuilt whenever its TableSchema changes. */
export class TableSerializer {
  readonly topic: string;
  /** The topic's number in the delivery's registry. */
  readonly topicNumber: number;
  readonly table: TableSchema;
  /** `","topic":"<topic>","key":` */
  private readonly topicKey: Buffer;
  /** The row's and the key's fields, with the table's shaping rule compiled in. */
  private readonly rows: RowWriter;
  /** Per op dropped by the table's rule (`drop`), null when none is: the assembler asks before writing. */
  readonly drops: Readonly<Record<DroppableOp, boolean>> | null;
  /** Set under `envelope.type: flat`: every write goes there. */
  private readonly flat: FlatWriter | null;
  /** `,"source":{"version":...,"txId":` as text: completed per transaction by `inTransaction`. */
  private readonly sourceHead: string;
  /** The source head of snapshot reads: "snapshot":"true" / "last". */
  private readonly readHead: string;
  private readonly lastReadHead: string;
  private readonly incrementalReadHead: string;
  /** A lost-slot recovery's re-read (lifecycle/lost-slot.ts): "snapshot":"recovery". */
  private readonly recoveryReadHead: string;
  /** topicKey plus the first key column's name: `...,"key":{"id":` (with a schema: `{"schema":..,"payload":{"id":`). */
  readonly topicKeyOpen: Buffer;
  /** What follows the key, with the first column name of the row after it already in place. */
  private readonly afterKey: ValueOpenings;
  /** The same without closing the key first (after the headers of a key change). */
  private readonly valueOpen: ValueOpenings;
  /** `}` after the key fields (`}}` with a schema). */
  readonly keyClose: Buffer;
  /** `,"headers":{"__debezium.newkey":{"id":` and the same for the old key. */
  readonly newKeyHeaderOpen: Buffer;
  readonly oldKeyHeaderOpen: Buffer;
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
    const rule = naming.shaping?.ruleFor(table.schema, table.table);
    const rows = new RowWriter(table, schemaTable, rule, naming.shaping?.salt, settings);
    this.rows = rows;
    const drop = rule?.drop ?? [];
    this.drops =
      drop.length === 0
        ? null
        : { c: drop.includes('c'), u: drop.includes('u'), d: drop.includes('d'), t: drop.includes('t') };
    this.flat =
      settings.type === 'flat'
        ? new FlatWriter(rows, {
            topic: this.topic,
            withSchema,
            tombstones: settings.deletes === 'tombstone',
            newKeyHeader: NEW_KEY_HEADER,
            oldKeyHeader: OLD_KEY_HEADER,
          })
        : null;
    const firstColumn = rows.firstRowPrefix;
    const firstKey = rows.firstKeyPrefix;
    const keyOpen = withSchema ? payloadOpen(keySchema(this.topic, rows.keyView)) : '';
    const envelope = withSchema && this.flat === null ? payloadOpen(envelopeSchema(this.topic, rows.rowView)) : '';
    const valueHead = `,"value":${envelope}`;
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
    this.recoveryReadHead = this.sourceHead.replace('"snapshot":"false"', '"snapshot":"recovery"');
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
    if (this.flat !== null) {
      this.flat.write(w, op, key, before, after, tx, lsn, totalOrder);
      return;
    }
    w.raw(tx.idOpen);
    w.uint(totalOrder - 1);
    const keyed = key !== null && this.table.keyIndexes.length > 0;
    if (keyed) {
      w.raw(this.topicKeyOpen);
      this.rows.writeKey(w, key);
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
    if (this.flat !== null) {
      this.flat.writeKeyChange(w, op, old, row, tx, lsn, totalOrder);
      return;
    }
    writeKeyChangeHead(w, this.rows, this, op, old, row, tx.idOpen, totalOrder);
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
      this.rows.writeRow(w, before);
      w.raw(after === null ? BEFORE_THEN_NO_AFTER : this.beforeThenAfter);
    }
    let placeholders = false;
    if (after !== null) {
      placeholders = this.rows.writeRow(w, after);
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
  writeRead(w: LineWriter, row: RowSource, idHead: Buffer, ordinal: number, tail: Buffer): void {
    if (this.flat !== null) {
      this.flat.writeRead(w, row, idHead, ordinal, tail);
      return;
    }
    const keyed = this.table.keyIndexes.length > 0;
    w.raw(idHead);
    w.uint(ordinal);
    if (keyed) {
      w.raw(this.topicKeyOpen);
      this.rows.writeKey(w, row);
    } else w.raw(this.topicKey);
    w.raw(keyed ? this.afterKey.noBefore.open : this.afterKey.noBefore.none);
    this.rows.writeRow(w, row);
    w.raw(tail);
  }

  /**
   * What follows the row of a read event: the source block with Debezium's snapshot marker
   * ("true", "last" on the snapshot's final row, "incremental" for online snapshots, "recovery" for
   * a lost-slot recovery's re-read), the position
   * `lsn` the row stands at (also the second half of `source.sequence`; reads follow no commit),
   * and the processing time.
   */
  readTail(
    snapshot: 'true' | 'last' | 'incremental' | 'recovery',
    lsn: number,
    lsnText: string,
    nowMs: number,
  ): Buffer {
    if (this.flat !== null) return this.flat.readTail(lsn, nowMs);
    const head = {
      true: this.readHead,
      last: this.lastReadHead,
      incremental: this.incrementalReadHead,
      recovery: this.recoveryReadHead,
    }[snapshot];
    return bytes(
      `}${head}null,"lsn":${lsn},"sequence":"[null,\\"${lsn}\\"]","commit_lsn":"${lsnText}","ts_ms":${nowMs}` +
        `${subMillis(nowMs)},"xmin":null},"op":"r","ts_ms":${nowMs}${subMillis(nowMs)},"transaction":null}}` +
        (this.withSchema ? '}' : ''),
    );
  }

  /**
   * A lost-slot recovery's delete of a key the sink held and the source lacks
   * (snapshot/recovery-deletes.ts): op d, `before` and `after` null, `key` the key's JSON text as
   * the sink holds it, the source block of a recovery read (`"snapshot":"recovery"`). The id is
   * `idHead` then `ordinal`, as for reads. `tail` is `recoveryDeleteTail`'s. Plain json, debezium
   * envelope only (config.ts refuses onLostDeletes emit otherwise).
   */
  writeKeyDelete(w: LineWriter, key: Buffer, idHead: Buffer, ordinal: number, tail: Buffer): void {
    if (this.flat !== null || this.withSchema)
      throw new CdcError('INTERNAL', 'a recovery delete needs the plain json debezium envelope');
    w.raw(idHead);
    w.uint(ordinal);
    w.raw(this.topicKey);
    w.raw(key);
    w.raw(KEY_DELETE_VALUE);
    w.raw(tail);
  }

  /** What follows `"after":null` in a recovery delete: a read's tail without the row's close, op d. */
  recoveryDeleteTail(lsn: number, lsnText: string, nowMs: number): Buffer {
    const read = this.readTail('recovery', lsn, lsnText, nowMs).toString('utf8');
    return bytes(read.slice(1).replace('"op":"r"', '"op":"d"'));
  }

  /** `,"unavailable_columns":["a",...]`: the row's columns that are unchanged TOAST in `tuple`. */
  unavailableColumns(tuple: TupleData): Buffer {
    return unavailableColumnsField(this.rows.unavailableNames(tuple));
  }
}
