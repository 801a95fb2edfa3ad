/**
 * An event line as a Kafka record, without parsing the JSON: the key, headers and value are views of
 * the batch's bytes (no copy). A line is laid out by envelope/ as
 *
 *   {"id":"<id>","topic":"<topic>","key":<key>[,"headers":{"<name>":<json>,...}],"value":<value>}
 *
 * so the key is the JSON value after `"key":`, the value runs from after `"value":` to the line's
 * last `}`, and the record's headers are the line's `headers` members (as JSON text) plus the
 * event id and the LSN that starts it (`pgcdc.id`, `pgcdc.lsn`).
 */
import { COLON, COMMA, ID_START, KEY_MEMBER, QUOTE, skipString, skipValue, startsWith } from '../event-line.ts';

const HEADERS_MEMBER = Buffer.from(',"headers":');
const VALUE_MEMBER = Buffer.from(',"value":');

export const HEADER_ID = Buffer.from('pgcdc.id');
export const HEADER_LSN = Buffer.from('pgcdc.lsn');

/** One event line's parts, as views of the batch's bytes. */
export interface RecordParts {
  /** Undefined for a null key (a table without a key, messages). */
  key: Buffer | undefined;
  value: Buffer;
  headers: Map<Buffer, Buffer>;
}

/** Splits the line `data[start, end)` (without its newline). Throws RangeError on a malformed line. */
export function recordParts(data: Buffer, start: number, end: number): RecordParts {
  const idEnd = data.indexOf(QUOTE, start + ID_START);
  const headers = new Map<Buffer, Buffer>();
  headers.set(HEADER_ID, data.subarray(start + ID_START, idEnd));
  const lsnEnd = data.indexOf(COLON, start + ID_START);
  if (lsnEnd !== -1 && lsnEnd < idEnd) headers.set(HEADER_LSN, data.subarray(start + ID_START, lsnEnd));
  // ,"topic":"<topic>"
  const topicEnd = skipString(data, data.indexOf(COLON, idEnd + 2) + 1, end);
  if (!startsWith(data, topicEnd, KEY_MEMBER)) throw new RangeError('an event line without its key member');
  const keyStart = topicEnd + KEY_MEMBER.length;
  const keyEnd = skipValue(data, keyStart, end);
  const key = data[keyStart] === 0x6e /* null */ ? undefined : data.subarray(keyStart, keyEnd);
  let at = keyEnd;
  if (startsWith(data, at, HEADERS_MEMBER)) {
    const open = at + HEADERS_MEMBER.length;
    const close = skipValue(data, open, end);
    let i = open + 1;
    while (i < close - 1) {
      const nameEnd = skipString(data, i, end);
      const name = data.subarray(i + 1, nameEnd - 1);
      const valueEnd = skipValue(data, nameEnd + 1, close);
      headers.set(name, data.subarray(nameEnd + 1, valueEnd));
      i = data[valueEnd] === COMMA ? valueEnd + 1 : valueEnd;
    }
    at = close;
  }
  if (!startsWith(data, at, VALUE_MEMBER)) throw new RangeError('an event line without its value member');
  return { key, value: data.subarray(at + VALUE_MEMBER.length, end - 1), headers };
}

/**
 * A topic name Kafka accepts: ASCII letters, digits, `.`, `_` and `-`, at most 249 characters. Any
 * other character becomes `_` (as Debezium's topic name sanitizer does), so `public.Order Items`
 * goes to `public.Order_Items`.
 */
export function kafkaTopicName(topic: string): string {
  const sanitized = topic.replace(/[^a-zA-Z0-9._-]/g, '_');
  return sanitized.length <= 249 ? sanitized : sanitized.slice(0, 249);
}

/** Bytes a record takes on the wire, near enough to bound request sizes. */
export function recordSize(parts: RecordParts): number {
  let size = 24 + (parts.key?.length ?? 0) + parts.value.length;
  for (const [name, value] of parts.headers) size += 8 + name.length + value.length;
  return size;
}
