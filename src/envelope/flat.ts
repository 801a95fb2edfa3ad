/**
 * `envelope.type: flat`: each change as the row itself plus metadata fields, as Debezium users get
 * from its ExtractNewRecordState transform with `add.fields=op,table,lsn,source.ts_ms`
 * (docs/shaping.md). The line layout is the same as the Debezium envelope's, so every sink
 * takes it unchanged:
 *
 * {"id":"<commit_lsn>:<ordinal>","topic":"<topic>","key":{..}|null,["headers":{..},]
 *  "value":{<row fields>,"__op":"c|u|d|r|t","__deleted":false|true,"__table":"<schema>.<table>",
 *           "__lsn":N,"__ts_ms":N} | null}
 *
 * The row is `after` for c, u and r, the old row for d (`envelope.deletes: rewrite`, `__deleted`
 * true) or no value at all (`tombstone`: `"value":null`), and no fields for t. `__lsn` is the
 * change's LSN (source.lsn), `__ts_ms` the commit time (source.ts_ms; a read's: when it was read).
 * Under json-with-schema the value is `{"schema":<topic>.Value,"payload":...}` (schemas.ts
 * flatValueSchema); a tombstone stays `null`.
 *
 * Like json.ts, every constant part is encoded once per table, and rows are written by the table's
 * RowWriter straight into the batch.
 */
import type { TupleData } from '../protocol/messages.ts';
import { writeKeyChangeHead, type LineWriter, type RowSource, type RowWriter } from './row-writer.ts';
import { flatValueSchema, keySchema, payloadOpen } from './schemas.ts';
import type { Op, TransactionContext } from './transaction-context.ts';

const bytes = (text: string): Buffer => Buffer.from(text, 'utf8');
const TS_MS = bytes(',"__ts_ms":');
const OPS: readonly Op[] = ['c', 'u', 'd', 'r', 't'];

/** A fragment that follows a key object (`open`, closing it first) or a null key (`none`). */
interface AfterKey {
  readonly open: Buffer;
  readonly none: Buffer;
}

export interface FlatOptions {
  readonly topic: string;
  readonly withSchema: boolean;
  readonly tombstones: boolean;
  readonly newKeyHeader: string;
  readonly oldKeyHeader: string;
}

export class FlatWriter {
  private readonly rows: RowWriter;
  private readonly tombstones: boolean;
  /** `","topic":"<topic>","key":` and the same with the key opened and its first name. */
  private readonly topicKey: Buffer;
  readonly topicKeyOpen: Buffer;
  readonly keyClose: Buffer;
  /** The value opened with the row's first field name. */
  private readonly withRow: AfterKey;
  /** The value opened with no row fields (truncate). */
  private readonly noRow: AfterKey;
  /** `"value":null` and the line's end. */
  private readonly tombstone: AfterKey;
  /** After headers: the value opened with the row's first field, or a null value. */
  private readonly valueWithRow: Buffer;
  private readonly valueNull: Buffer;
  readonly newKeyHeaderOpen: Buffer;
  readonly oldKeyHeaderOpen: Buffer;
  /** Per op: `,"__op":"c","__deleted":false,"__table":"s.t","__lsn":` (no comma after an empty row). */
  private readonly metaAfterRow: Readonly<Partial<Record<Op, Buffer>>>;
  private readonly metaNoRow: Readonly<Partial<Record<Op, Buffer>>>;
  /** `}}`: the value and the line (`}}}` with the value's schema wrapper). */
  private readonly close: Buffer;

  constructor(rows: RowWriter, options: FlatOptions) {
    this.rows = rows;
    this.tombstones = options.tombstones;
    const { topic, withSchema } = options;
    const table = rows.table;
    this.topicKey = bytes(`","topic":${JSON.stringify(topic)},"key":`);
    const keyOpen = withSchema ? payloadOpen(keySchema(topic, rows.keyView)) : '';
    this.topicKeyOpen = Buffer.concat([this.topicKey, bytes(keyOpen), rows.firstKeyPrefix]);
    this.keyClose = bytes(withSchema ? '}}' : '}');
    const valueHead = `,"value":${withSchema ? payloadOpen(flatValueSchema(topic, rows.rowView)) : ''}`;
    const afterKey = (text: string, first: Buffer | null): AfterKey => ({
      open: Buffer.concat([this.keyClose, bytes(text), ...(first ? [first] : [])]),
      none: Buffer.concat([bytes(`null${text}`), ...(first ? [first] : [])]),
    });
    this.withRow = afterKey(valueHead, rows.firstRowPrefix);
    this.noRow = afterKey(`${valueHead}{`, null);
    this.tombstone = afterKey(',"value":null}', null);
    this.valueWithRow = Buffer.concat([bytes(valueHead), rows.firstRowPrefix]);
    this.valueNull = bytes(',"value":null}');
    const header = (name: string): Buffer =>
      Buffer.concat([bytes(`,"headers":{${JSON.stringify(name)}:`), rows.firstKeyPrefix]);
    this.newKeyHeaderOpen = header(options.newKeyHeader);
    this.oldKeyHeaderOpen = header(options.oldKeyHeader);
    const tableName = JSON.stringify(`${table.schema}.${table.table}`);
    const meta = (op: Op, comma: boolean): Buffer =>
      bytes(`${comma ? ',' : ''}"__op":"${op}","__deleted":${op === 'd'},"__table":${tableName},"__lsn":`);
    this.metaAfterRow = Object.fromEntries(OPS.map((op) => [op, meta(op, rows.rowColumnCount > 0)]));
    this.metaNoRow = Object.fromEntries(OPS.map((op) => [op, meta(op, false)]));
    this.close = bytes(withSchema ? '}}}' : '}}');
  }

  /** A change: see TableSerializer.write (`before`, `inTx` and the unavailable columns have no place here). */
  write(
    w: LineWriter,
    op: Op,
    key: TupleData | null,
    before: TupleData | null,
    after: TupleData | null,
    tx: TransactionContext,
    lsn: number,
    totalOrder: number,
  ): void {
    w.raw(tx.idOpen);
    w.uint(totalOrder - 1);
    const keyed = key !== null && this.rows.table.keyIndexes.length > 0;
    if (keyed) {
      w.raw(this.topicKeyOpen);
      this.rows.writeKey(w, key);
    } else w.raw(this.topicKey);
    if (op === 'd' && this.tombstones) {
      w.raw(keyed ? this.tombstone.open : this.tombstone.none);
      return;
    }
    const row = op === 'd' ? before : after;
    if (row === null) {
      w.raw(keyed ? this.noRow.open : this.noRow.none);
      w.raw(this.metaNoRow[op] as Buffer);
    } else {
      w.raw(keyed ? this.withRow.open : this.withRow.none);
      this.rows.writeRow(w, row);
      w.raw(this.metaAfterRow[op] as Buffer);
    }
    this.tail(w, lsn, tx.commitTimeMs);
  }

  /** One of the two events of a primary-key change: see TableSerializer.writeKeyChange. */
  writeKeyChange(
    w: LineWriter,
    op: 'd' | 'c',
    old: TupleData,
    row: TupleData,
    tx: TransactionContext,
    lsn: number,
    totalOrder: number,
  ): void {
    writeKeyChangeHead(w, this.rows, this, op, old, row, tx.idOpen, totalOrder);
    if (op === 'd' && this.tombstones) {
      w.raw(this.valueNull);
      return;
    }
    w.raw(this.valueWithRow);
    this.rows.writeRow(w, op === 'd' ? old : row);
    w.raw(this.metaAfterRow[op] as Buffer);
    this.tail(w, lsn, tx.commitTimeMs);
  }

  /** A snapshot read: see TableSerializer.writeRead; `tail` comes from `readTail`. */
  writeRead(w: LineWriter, row: RowSource, idHead: Buffer, ordinal: number, tail: Buffer): void {
    const keyed = this.rows.table.keyIndexes.length > 0;
    w.raw(idHead);
    w.uint(ordinal);
    if (keyed) {
      w.raw(this.topicKeyOpen);
      this.rows.writeKey(w, row);
    } else w.raw(this.topicKey);
    w.raw(keyed ? this.withRow.open : this.withRow.none);
    this.rows.writeRow(w, row);
    w.raw(tail);
  }

  /** What follows a read's row: the metadata with the read's position and time. */
  readTail(lsn: number, nowMs: number): Buffer {
    return Buffer.concat([this.metaAfterRow.r as Buffer, bytes(String(lsn)), TS_MS, bytes(String(nowMs)), this.close]);
  }

  private tail(w: LineWriter, lsn: number, ms: number): void {
    w.uint(lsn);
    w.raw(TS_MS);
    w.uint(ms);
    w.raw(this.close);
  }
}
