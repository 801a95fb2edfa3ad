/**
 * Per-table precompiled serializers for change events (ARCHITECTURE.md, the hot path). Every constant
 * part of a line is encoded to bytes once per table; an event is written straight into the
 * delivery batch (sinks/batch.ts) as those fragments plus the column encoders' output. No line
 * string is ever built: serialisation is the main cost of the pipeline, and building then encoding
 * a rope of 30 pieces per event cost more than everything else together (bench/stream.ts).
 *
 * Line layout (one line per event):
 * {"id":"<commit_lsn>:<ordinal>","topic":"<topic>","key":{..}|null,
 *  "value":{"before":{..}|null,"after":{..}|null,"source":{..},"op":"c|u|d|t|m","ts_ms":N,
 *           "transaction":{"id":"<xid>:<commit_lsn>","total_order":N,"data_collection_order":N}}}
 */
import { UNCHANGED_TOAST, type TupleData } from '../protocol/messages.ts';
import type { TableSchema } from '../source/relations.ts';
import type { TopicRegistry } from '../sinks/batch.ts';
import { topicName, type TopicNaming } from './topics.ts';

export const PGCDC_VERSION = '0.1.0';
export const UNAVAILABLE_VALUE = '__pgcdc_unavailable_value';

export type Op = 'c' | 'u' | 'd' | 'r' | 't' | 'm';

/** Where serialized bytes go: implemented by EventBatchBuilder. */
export interface LineWriter {
  raw(bytes: Uint8Array): void;
  text(s: string): void;
  jsonString(s: string): void;
  uint(value: number): void;
}

/** What is the same for every event of one transaction, with its bytes encoded once. */
export interface TransactionContext {
  readonly xid: number;
  /** The commit LSN as "X/Y" (also the first half of every event id). */
  readonly commitLsn: string;
  /** Commit time, Unix milliseconds. */
  readonly commitTimeMs: number;
  /** `{"id":"<commit_lsn>:` */
  readonly idOpen: Buffer;
  /** Per op: `,"commit_lsn":"<commit_lsn>","ts_ms":<commit ms>},"op":"<op>","ts_ms":` (built on first use). */
  readonly commitTail: Partial<Record<Op, Buffer>>;
  /** `,"transaction":{"id":"<xid>:<commit_lsn>","total_order":` */
  readonly txOpen: string;
  /** `<now ms>` + txOpen, re-encoded when the millisecond changes. */
  nowMs: number;
  nowTxOpen: Buffer;
}

export function transactionContext(xid: number, commitLsn: string, commitTimeMs: number): TransactionContext {
  return {
    xid,
    commitLsn,
    commitTimeMs,
    idOpen: bytes(`{"id":"${commitLsn}:`),
    commitTail: {},
    txOpen: `,"transaction":{"id":"${xid}:${commitLsn}","total_order":`,
    nowMs: -1,
    nowTxOpen: EMPTY,
  };
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
const UNAVAILABLE = bytes(JSON.stringify(UNAVAILABLE_VALUE));
const DATA_COLLECTION_ORDER = bytes(',"data_collection_order":');
const CLOSE = bytes('}}}');
const OPEN_OBJECT = bytes('{');

// Rows are written without their closing brace; the next fragment closes them. Fewer, longer
// fragments: each write into the batch costs about the same whatever its length.
const AFTER_KEY = {
  /** insert, and update without an old row */
  noBefore: { open: bytes('},"value":{"before":null,"after":'), none: bytes('null,"value":{"before":null,"after":') },
  /** update or delete with an old row */
  before: { open: bytes('},"value":{"before":'), none: bytes('null,"value":{"before":') },
  /** truncate */
  nothing: {
    open: bytes('},"value":{"before":null,"after":null'),
    none: bytes('null,"value":{"before":null,"after":null'),
  },
};
const BEFORE_THEN_AFTER = bytes('},"after":');
const BEFORE_THEN_NO_AFTER = bytes('},"after":null');

function commitTail(tx: TransactionContext, op: Op): Buffer {
  return (tx.commitTail[op] ??= bytes(
    `,"commit_lsn":"${tx.commitLsn}","ts_ms":${tx.commitTimeMs}},"op":"${op}","ts_ms":`,
  ));
}

const EMPTY = Buffer.alloc(0);

/** The source field naming columns whose value is not in the event (see TOAST in docs/events.md). */
export function unavailableColumnsField(names: readonly string[]): Buffer {
  return bytes(`,"unavailable_columns":${JSON.stringify(names)}`);
}

/** The processing time and the transaction head, encoded once per millisecond, not per event. */
function nowAndTransaction(tx: TransactionContext, ms: number): Buffer {
  if (tx.nowMs !== ms) {
    tx.nowMs = ms;
    tx.nowTxOpen = bytes(`${ms}${tx.txOpen}`);
  }
  return tx.nowTxOpen;
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
  /** `,"source":{"version":...,"txId":` as text: completed per transaction by `inTransaction`. */
  private readonly sourceHead: string;
  /** The source head of snapshot reads: "snapshot":"true" / "last". */
  private readonly readHead: string;
  private readonly lastReadHead: string;
  private readonly incrementalReadHead: string;
  /** topicKey plus the first key column's name: `...,"key":{"id":` */
  private readonly topicKeyOpen: Buffer;
  /** What follows the key, with the first column name of the row after it already in place. */
  private readonly afterKey: {
    readonly noBefore: { readonly open: Buffer; readonly none: Buffer };
    readonly before: { readonly open: Buffer; readonly none: Buffer };
    readonly nothing: { readonly open: Buffer; readonly none: Buffer };
  };
  private readonly beforeThenAfter: Buffer;

  constructor(table: TableSchema, naming: TopicNaming, topics: TopicRegistry) {
    this.table = table;
    this.topic = topicName(naming, table);
    this.topicNumber = topics.number(this.topic);
    this.topicKey = bytes(`","topic":${JSON.stringify(this.topic)},"key":`);
    this.columnPrefixes = table.columns.map((c, i) => bytes(`${i === 0 ? '{' : ','}${JSON.stringify(c.name)}:`));
    this.keyPrefixes = table.keyIndexes.map((index, i) =>
      bytes(`${i === 0 ? '{' : ','}${JSON.stringify(table.columns[index]?.name ?? '')}:`),
    );
    const firstColumn = this.columnPrefixes[0] ?? OPEN_OBJECT;
    const join = (...parts: Buffer[]): Buffer => Buffer.concat(parts);
    this.topicKeyOpen = join(this.topicKey, this.keyPrefixes[0] ?? OPEN_OBJECT);
    this.afterKey = {
      noBefore: { open: join(AFTER_KEY.noBefore.open, firstColumn), none: join(AFTER_KEY.noBefore.none, firstColumn) },
      before: { open: join(AFTER_KEY.before.open, firstColumn), none: join(AFTER_KEY.before.none, firstColumn) },
      nothing: AFTER_KEY.nothing,
    };
    this.beforeThenAfter = join(BEFORE_THEN_AFTER, firstColumn);
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
    // Rare: unchanged TOASTed columns are named in the source block (toast.mode, docs/events.md).
    if (unavailable !== null) w.raw(unavailable);
    else if (placeholders && after !== null) w.raw(this.unavailableColumns(after));
    w.raw(commitTail(tx, op));
    w.raw(nowAndTransaction(tx, nowMs));
    w.uint(totalOrder);
    w.raw(DATA_COLLECTION_ORDER);
    w.uint(inTx.count);
    w.raw(CLOSE);
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
   * `lsn` the row stands at, and the processing time.
   */
  readTail(snapshot: 'true' | 'last' | 'incremental', lsn: number, lsnText: string, nowMs: number): Buffer {
    const head =
      snapshot === 'true' ? this.readHead : snapshot === 'last' ? this.lastReadHead : this.incrementalReadHead;
    return bytes(
      `}${head}null,"lsn":${lsn},"commit_lsn":"${lsnText}","ts_ms":${nowMs}},` +
        `"op":"r","ts_ms":${nowMs},"transaction":null}}`,
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
        w.raw(indexes === null ? UNAVAILABLE : NULL);
        placeholders = true;
      } else w.text(JSON.stringify(value.toString('base64')));
    }
    return placeholders;
  }
}
