/**
 * Logical decoding messages (pg_logical_emit_message, PostgreSQL 14+ with pgoutput) as op 'm'
 * events, in the shape Debezium gives them:
 *
 * {"id":"<commit_lsn>:<ordinal>" | "<message_lsn>:message","topic":"<prefix>.message","key":{"prefix":"<p>"},
 *  "value":{"op":"m","ts_ms":N,"source":{...,"lsn":<message lsn>,"txId":<xid>|null,...},
 *           "message":{"prefix":"<p>","content":"<base64>"},"transaction":{...}|null}}
 *
 * Messages are rare next to row changes, so this builds the line as a string.
 */
import { PGCDC_VERSION, sequenceOpen, type TransactionContext } from './json.ts';
import { MESSAGE_KEY_SCHEMA, MESSAGE_VALUE_SCHEMA, withSchema } from './schemas.ts';
import { topicName, type TopicNaming } from './topics.ts';

/** Messages whose prefix starts with this are pgcdc's own (watermarks, heartbeats): never emitted. */
export const RESERVED_MESSAGE_PREFIX = 'pgcdc';

/** The second part of a non-transactional message's id, `<message lsn>:message`. */
export const NON_TRANSACTIONAL_ID_MARK = 'message';

export interface MessageEvent {
  readonly prefix: string;
  readonly content: Buffer;
  /** The message's own LSN. */
  readonly lsn: number;
}

/**
 * The event line for a message. `tx` is the enclosing transaction for a transactional message
 * (with its 1-based `totalOrder`), undefined for a non-transactional one.
 *
 * A non-transactional message has no commit: its id is `<message lsn>:message`. Its LSN (the end of
 * its WAL record) is often the commit LSN of the transaction that emitted it, which is decoded
 * right after it, so `<message lsn>:0` would be that transaction's first event id (docs/events.md,
 * "Event ids").
 */
export function messageLine(
  naming: TopicNaming,
  message: MessageEvent,
  tx: { context: TransactionContext; totalOrder: number } | undefined,
  lsnText: string,
  nowMs: number,
  lastCommitLsn: number | null = null,
): string {
  const id = tx ? `${tx.context.commitLsn}:${tx.totalOrder - 1}` : `${lsnText}:${NON_TRANSACTIONAL_ID_MARK}`;
  const prefix = JSON.stringify(message.prefix);
  const format = naming.envelope?.format ?? 'json';
  const us = tx ? tx.context.commitTimeUs : nowMs * 1000;
  // A transactional message's sequence head is its transaction's (the commit before it).
  const sequence = (tx ? tx.context.sequenceOpen : sequenceOpen(lastCommitLsn)).toString('utf8');
  const source =
    `{"version":"${PGCDC_VERSION}","connector":"postgresql","name":${JSON.stringify(naming.prefix)},` +
    `"db":${JSON.stringify(naming.database)},` +
    `"schema":"","table":"","snapshot":"false","txId":${tx ? tx.context.xid : 'null'},"lsn":${message.lsn}` +
    `${sequence}${message.lsn}\\"]",` +
    `"commit_lsn":${tx ? `"${tx.context.commitLsn}"` : 'null'},"ts_ms":${tx ? tx.context.commitTimeMs : nowMs},` +
    `"ts_us":${us},"ts_ns":${us}000,"xmin":null}`;
  const transaction = tx
    ? `{"id":"${tx.context.xid}:${tx.context.commitLsn}","total_order":${tx.totalOrder},` +
      `"data_collection_order":${tx.totalOrder}}`
    : 'null';
  const value =
    `{"op":"m","ts_ms":${nowMs},"source":${source},` +
    `"message":{"prefix":${prefix},"content":"${message.content.toString('base64')}"},` +
    `"transaction":${transaction}}`;
  return (
    `{"id":"${id}","topic":${JSON.stringify(topicName(naming, 'message'))},` +
    `"key":${withSchema(format, MESSAGE_KEY_SCHEMA, `{"prefix":${prefix}}`)},` +
    `"value":${withSchema(format, MESSAGE_VALUE_SCHEMA, value)}}`
  );
}
