/**
 * What every event of one transaction shares, encoded once (json.ts splices it): the id head, the
 * commit fields of the source block (commit LSN, commit time in ms/µs/ns, Debezium's sequence head)
 * and the processing time with the transaction block head, re-encoded only when the millisecond
 * changes.
 */

/** UTF-8 bytes of a fragment. */
const bytes = (text: string): Buffer => Buffer.from(text, 'utf8');
const EMPTY = Buffer.alloc(0);

export type Op = 'c' | 'u' | 'd' | 'r' | 't' | 'm';

/** What is the same for every event of one transaction, with its bytes encoded once. */
export interface TransactionContext {
  readonly xid: number;
  /** The commit LSN as "X/Y" (also the first half of every event id). */
  readonly commitLsn: string;
  /** Commit time, Unix milliseconds. */
  readonly commitTimeMs: number;
  /** Commit time, Unix microseconds (PostgreSQL's precision). */
  readonly commitTimeUs: number;
  /** `{"id":"<commit_lsn>:` */
  readonly idOpen: Buffer;
  /**
   * `,"sequence":"[\"<last commit>\",\"`: Debezium's `source.sequence`, completed by the event's LSN.
   * The last commit is the end LSN of the transaction before this one (null when not known).
   */
  readonly sequenceOpen: Buffer;
  /** Per op: `,"commit_lsn":"<commit_lsn>","ts_ms":<commit ms>,...},"op":"<op>","ts_ms":` (built on first use). */
  readonly commitTail: Partial<Record<Op, Buffer>>;
  /** `,"transaction":{"id":"<xid>:<commit_lsn>","total_order":` */
  readonly txOpen: string;
  /** `<now ms>` + txOpen, re-encoded when the millisecond changes. */
  nowMs: number;
  nowTxOpen: Buffer;
}

/**
 * `commitTimeUs` defaults to the milliseconds' value; `lastCommitLsn` is the end LSN of the
 * previous transaction (source.sequence), null when unknown.
 */
export function transactionContext(
  xid: number,
  commitLsn: string,
  commitTimeMs: number,
  commitTimeUs = commitTimeMs * 1000,
  lastCommitLsn: number | null = null,
): TransactionContext {
  return {
    xid,
    commitLsn,
    commitTimeMs,
    commitTimeUs,
    idOpen: bytes(`{"id":"${commitLsn}:`),
    sequenceOpen: sequenceOpen(lastCommitLsn),
    commitTail: {},
    txOpen: `,"transaction":{"id":"${xid}:${commitLsn}","total_order":`,
    nowMs: -1,
    nowTxOpen: EMPTY,
  };
}

/** Debezium's `source.sequence` head: a JSON array of decimal LSN strings, in a JSON string. */
export function sequenceOpen(lastCommitLsn: number | null): Buffer {
  return bytes(`,"sequence":"[${lastCommitLsn === null ? 'null' : `\\"${lastCommitLsn}\\"`},\\"`);
}

/** `,"ts_us":<ms>000,"ts_ns":<ms>000000` for a time known to the millisecond (strings: ns passes 2^53). */
export function subMillis(ms: number): string {
  return `,"ts_us":${ms}000,"ts_ns":${ms}000000`;
}

export function commitTail(tx: TransactionContext, op: Op): Buffer {
  return (tx.commitTail[op] ??= bytes(
    `,"commit_lsn":"${tx.commitLsn}","ts_ms":${tx.commitTimeMs},"ts_us":${tx.commitTimeUs},` +
      `"ts_ns":${tx.commitTimeUs}000,"xmin":null},"op":"${op}","ts_ms":`,
  ));
}

/** The processing time and the transaction head, encoded once per millisecond, not per event. */
export function nowAndTransaction(tx: TransactionContext, ms: number): Buffer {
  if (tx.nowMs !== ms) {
    tx.nowMs = ms;
    tx.nowTxOpen = bytes(`${ms}${subMillis(ms)}${tx.txOpen}`);
  }
  return tx.nowTxOpen;
}
