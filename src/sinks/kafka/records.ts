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

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;

const ID_START = Buffer.byteLength('{"id":"');
const KEY_MEMBER = Buffer.from(',"key":');
const HEADERS_MEMBER = Buffer.from(',"headers":');
const VALUE_MEMBER = Buffer.from(',"value":');

export const HEADER_ID = Buffer.from('pgcdc.id');
export const HEADER_LSN = Buffer.from('pgcdc.lsn');

/** The position after the JSON string that starts at `at` (its opening quote). */
function skipString(data: Buffer, at: number): number {
  let i = at + 1;
  for (;;) {
    const c = data[i];
    if (c === undefined) throw new RangeError('unterminated JSON string in an event line');
    if (c === BACKSLASH) i += 2;
    else if (c === QUOTE) return i + 1;
    else i++;
  }
}

/** The position after the JSON value that starts at `at`. */
function skipValue(data: Buffer, at: number, end: number): number {
  const first = data[at];
  if (first === QUOTE) return skipString(data, at);
  if (first !== OPEN_BRACE && first !== OPEN_BRACKET) {
    let i = at;
    while (i < end && data[i] !== COMMA && data[i] !== CLOSE_BRACE && data[i] !== CLOSE_BRACKET) i++;
    return i;
  }
  let depth = 0;
  let i = at;
  while (i < end) {
    const c = data[i] as number;
    if (c === QUOTE) {
      i = skipString(data, i);
      continue;
    }
    if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++;
    else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
      if (depth === 0) return i + 1;
    }
    i++;
  }
  throw new RangeError('unterminated JSON value in an event line');
}

function startsWith(data: Buffer, at: number, member: Buffer): boolean {
  return data.compare(member, 0, member.length, at, at + member.length) === 0;
}

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
  const topicEnd = skipString(data, data.indexOf(COLON, idEnd + 2) + 1);
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
      const nameEnd = skipString(data, i);
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
