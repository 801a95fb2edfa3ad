/**
 * The events a library handler receives (`capture({ handler })`), typed: the JSON line of each
 * event (docs/events.md) as parsed, plus `op` copied from `value.op` to the top so that one
 * `switch (event.op)` narrows `key`, `value.before`, `value.after` and `value.source` together.
 *
 * `Row` is the shape of a captured table's row as pgcdc writes it (docs/types.md: int8 and numeric
 * are strings by default, times ISO 8601 strings, json inlined). It is the caller's promise, not
 * checked at run time. With several tables, use a union of their rows and look at
 * `value.source.table`, or leave the default (`Record<string, unknown>`).
 */

/** A row as pgcdc writes it when nothing is known about the table. */
export type AnyRow = Record<string, unknown>;

/**
 * The old row in `before`: under REPLICA IDENTITY FULL every column; under DEFAULT (deletes, and
 * updates that change the key) the key columns, the others null.
 */
export type OldRow<Row> = { [Column in keyof Row]: Row[Column] | null };

/** Where a change came from (`value.source`). */
export interface ChangeSource {
  readonly version: string;
  readonly connector: 'postgresql';
  /** The topic prefix (by default the database name). */
  readonly name: string;
  readonly db: string;
  readonly schema: string;
  readonly table: string;
  /**
   * `"false"` for streamed changes; snapshot reads: `"true"`, `"last"`, `"incremental"`, or `"recovery"`
   * (re-read by a lost-slot recovery, docs/recovery.md#lost-slots).
   */
  readonly snapshot: 'true' | 'false' | 'last' | 'incremental' | 'recovery';
  /** The transaction id (null on snapshot reads). */
  readonly txId: number | null;
  /** The WAL position of this change, as a number. */
  readonly lsn: number;
  /** Debezium's ordering aid: a JSON array in a string, `["<last commit>","<lsn>"]`. */
  readonly sequence: string;
  /** The commit LSN of the transaction, `X/Y` text. */
  readonly commit_lsn: string;
  /** Commit time, Unix milliseconds (and the same in microseconds and nanoseconds). */
  readonly ts_ms: number;
  readonly ts_us: number;
  readonly ts_ns: number;
  readonly xmin: null;
  /** Columns whose unchanged TOAST value the event lacks (toast.mode, docs/events.md). */
  readonly unavailable_columns?: readonly string[];
}

/** The transaction block of a streamed event (null on snapshot reads and non-transactional messages). */
export interface TransactionBlock {
  /** `<txId>:<commit_lsn>` */
  readonly id: string;
  /** 1-based position in the transaction. */
  readonly total_order: number;
  /** 1-based position among this table's events in the transaction. */
  readonly data_collection_order: number;
}

interface EnvelopeBase<Op extends string> {
  readonly op: Op;
  /** When pgcdc processed the event, Unix milliseconds (and microseconds, nanoseconds). */
  readonly ts_ms: number;
  readonly ts_us: number;
  readonly ts_ns: number;
}

/** The fields every event line has. */
interface EventBase<Op extends string, Key, Value> {
  /** Unique across topics, stable across restarts: deduplicate on it (docs/events.md, "Event ids"). */
  readonly id: string;
  /** `<prefix>.<schema>.<table>` (or `<prefix>.message`, `<prefix>.transaction`, ...). */
  readonly topic: string;
  /** `value.op` (or what stands for it, see each event), copied to the top for narrowing. */
  readonly op: Op;
  readonly key: Key;
  /** Only on the two events of a primary-key change (`__debezium.newkey` / `__debezium.oldkey`). */
  readonly headers?: { readonly [name: string]: unknown };
  readonly value: Value;
}

/** `c`: an insert (or the create half of a primary-key change). */
export type CreateEvent<Row = AnyRow> = EventBase<
  'c',
  Partial<Row> | null,
  EnvelopeBase<'c'> & {
    readonly before: null;
    readonly after: Row;
    readonly source: ChangeSource;
    readonly transaction: TransactionBlock;
  }
>;

/** `u`: an update that kept the key. `before` is present under REPLICA IDENTITY FULL only. */
export type UpdateEvent<Row = AnyRow> = EventBase<
  'u',
  Partial<Row> | null,
  EnvelopeBase<'u'> & {
    readonly before: OldRow<Row> | null;
    readonly after: Row;
    readonly source: ChangeSource;
    readonly transaction: TransactionBlock;
  }
>;

/** `d`: a delete (or the delete half of a primary-key change). */
export type DeleteEvent<Row = AnyRow> = EventBase<
  'd',
  Partial<Row> | null,
  EnvelopeBase<'d'> & {
    readonly before: OldRow<Row> | null;
    readonly after: null;
    readonly source: ChangeSource;
    readonly transaction: TransactionBlock;
  }
>;

/** `r`: a snapshot read of a row that existed when the capture began (or an incremental snapshot's). */
export type ReadEvent<Row = AnyRow> = EventBase<
  'r',
  Partial<Row> | null,
  EnvelopeBase<'r'> & {
    readonly before: null;
    readonly after: Row;
    readonly source: ChangeSource;
    readonly transaction: null;
  }
>;

/** `t`: a TRUNCATE of one table: every row of it is gone. */
export type TruncateEvent = EventBase<
  't',
  null,
  EnvelopeBase<'t'> & {
    readonly before: null;
    readonly after: null;
    readonly source: ChangeSource;
    readonly transaction: TransactionBlock;
  }
>;

/** `m`: a logical decoding message (pg_logical_emit_message, PostgreSQL 14+). */
export type MessageEvent = EventBase<
  'm',
  { readonly prefix: string },
  {
    readonly op: 'm';
    readonly ts_ms: number;
    /** `schema` and `table` are empty; `txId` and `commit_lsn` are null for a non-transactional message. */
    readonly source: Omit<ChangeSource, 'txId' | 'commit_lsn'> & {
      readonly txId: number | null;
      readonly commit_lsn: string | null;
    };
    /** `content` is base64. */
    readonly message: { readonly prefix: string; readonly content: string };
    /** null for a non-transactional message. */
    readonly transaction: TransactionBlock | null;
  }
>;

/** A table's new shape (`schemaChanges.events: true`); `op` is `schema`. */
export type SchemaChangeEvent = EventBase<
  'schema',
  { readonly schema: string; readonly table: string },
  {
    readonly op: 'schema';
    readonly change: 'create' | 'alter';
    readonly ts_ms: number;
    readonly relation_id: number;
    readonly source: { readonly [field: string]: unknown };
    readonly table: {
      readonly schema: string;
      readonly table: string;
      readonly replica_identity: string;
      readonly columns: readonly SchemaColumn[];
    };
    readonly previous: readonly SchemaColumn[] | null;
  }
>;

export interface SchemaColumn {
  readonly name: string;
  readonly type_oid: number;
  readonly type_mod: number;
  readonly key: boolean;
}

/**
 * BEGIN and END of a transaction (`transactions.events: true`). The line has no `value.op`: `op` is
 * `begin` or `end`, from `value.status`.
 */
export type TransactionEvent = EventBase<
  'begin' | 'end',
  { readonly id: string },
  {
    readonly status: 'BEGIN' | 'END';
    /** `<txId>:<commit_lsn>`, as in the data events' `transaction.id`. */
    readonly id: string;
    readonly ts_ms: number;
    /** null on BEGIN. */
    readonly event_count: number | null;
    readonly data_collections: readonly { readonly data_collection: string; readonly event_count: number }[] | null;
  }
>;

/** A row change: what most handlers look at. */
export type RowChangeEvent<Row = AnyRow> =
  CreateEvent<Row> | UpdateEvent<Row> | DeleteEvent<Row> | ReadEvent<Row> | TruncateEvent;

/** Every event pgcdc delivers with the default envelope (`envelope.format: json`), by `op`. */
export type CdcEvent<Row = AnyRow> = RowChangeEvent<Row> | MessageEvent | SchemaChangeEvent | TransactionEvent;

/** The `op` values. */
export type CdcOp = CdcEvent['op'];
