/**
 * Transaction metadata events (`transactions.events: true`), in the shape of Debezium's
 * `provide.transaction.metadata`, on topic `<prefix>.transaction` (`<db>_<prefix>.transaction`):
 *
 * {"id":"<commit_lsn>:begin","topic":"shop.transaction","key":{"id":"<xid>:<commit_lsn>"},
 *  "value":{"status":"BEGIN","id":"<xid>:<commit_lsn>","ts_ms":<commit ms>,"event_count":null,"data_collections":null}}
 * {"id":"<commit_lsn>:end",...,"value":{"status":"END",...,"event_count":3,
 *  "data_collections":[{"data_collection":"public.orders","event_count":2},...]}}
 *
 * The ids use the `<commit_lsn>:` scheme of every other event with `begin`/`end` in place of an
 * ordinal, so they are stable across restarts and the ordinals (and so the ids) of the data events
 * are the same whether these events are on or off. `ts_ms` is the commit time for the same reason:
 * the same transaction delivered again gives byte-identical lines.
 */
import type { TransactionContext } from './json.ts';
import { TRANSACTION_KEY_SCHEMA, TRANSACTION_VALUE_SCHEMA, withSchema } from './schemas.ts';
import { topicName, type TopicNaming } from './topics.ts';

export interface DataCollectionCount {
  /** `schema.table` */
  readonly name: string;
  readonly count: number;
}

function line(naming: TopicNaming, tx: TransactionContext, status: 'BEGIN' | 'END', tail: string): string {
  const id = `${tx.xid}:${tx.commitLsn}`;
  const topic = JSON.stringify(topicName(naming, 'transaction'));
  const format = naming.envelope?.format ?? 'json';
  const key = withSchema(format, TRANSACTION_KEY_SCHEMA, `{"id":"${id}"}`);
  const value = withSchema(
    format,
    TRANSACTION_VALUE_SCHEMA,
    `{"status":"${status}","id":"${id}","ts_ms":${tx.commitTimeMs},${tail}}`,
  );
  const eventId = `${tx.commitLsn}:${status === 'BEGIN' ? 'begin' : 'end'}`;
  return `{"id":"${eventId}","topic":${topic},"key":${key},"value":${value}}`;
}

export function beginLine(naming: TopicNaming, tx: TransactionContext): string {
  return line(naming, tx, 'BEGIN', '"event_count":null,"data_collections":null');
}

/** `eventCount` counts every event of the transaction (messages included); collections only tables. */
export function endLine(
  naming: TopicNaming,
  tx: TransactionContext,
  eventCount: number,
  collections: readonly DataCollectionCount[],
): string {
  const list = collections
    .map((c) => `{"data_collection":${JSON.stringify(c.name)},"event_count":${c.count}}`)
    .join(',');
  return line(naming, tx, 'END', `"event_count":${eventCount},"data_collections":[${list}]`);
}
