/**
 * Reading an event line's bytes without parsing its JSON, for the sink kinds that take a line apart
 * (Kafka's key/value/headers, HTTP's lanes, the id of NATS and Redis messages). A line is laid out by
 * envelope/ as
 *
 *   {"id":"<id>","topic":"<topic>","key":<key>[,"headers":{...}],"value":<value>}
 *
 * so the id starts at a fixed offset and runs to the next quote (ids hold no quote or backslash).
 */

export const QUOTE = 0x22;
export const BACKSLASH = 0x5c;
export const OPEN_BRACE = 0x7b;
export const CLOSE_BRACE = 0x7d;
export const OPEN_BRACKET = 0x5b;
export const CLOSE_BRACKET = 0x5d;
export const COMMA = 0x2c;
export const COLON = 0x3a;

/** Where the id's text starts: after `{"id":"`. */
export const ID_START = Buffer.byteLength('{"id":"');
/** `","topic":` after the id's closing quote; the topic's JSON string follows. */
export const TOPIC_MEMBER = Buffer.byteLength('","topic":');
export const KEY_MEMBER = Buffer.from(',"key":');

/** The position after the JSON string that starts at `at` (its opening quote), before `end`. */
export function skipString(data: Buffer, at: number, end: number): number {
  let i = at + 1;
  while (i < end) {
    const c = data[i] as number;
    if (c === BACKSLASH) i += 2;
    else if (c === QUOTE) return i + 1;
    else i++;
  }
  throw new RangeError('unterminated JSON string in an event line');
}

/** The position after the JSON value that starts at `at`, before `end`. */
export function skipValue(data: Buffer, at: number, end: number): number {
  const first = data[at];
  if (first === QUOTE) return skipString(data, at, end);
  let i = at;
  if (first !== OPEN_BRACE && first !== OPEN_BRACKET) {
    while (i < end && data[i] !== COMMA && data[i] !== CLOSE_BRACE && data[i] !== CLOSE_BRACKET) i++;
    return i;
  }
  let depth = 0;
  while (i < end) {
    const c = data[i] as number;
    if (c === QUOTE) {
      i = skipString(data, i, end);
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

/** Whether `data` holds `member`'s bytes at `at`. */
export function startsWith(data: Buffer, at: number, member: Buffer): boolean {
  return data.compare(member, 0, member.length, at, at + member.length) === 0;
}
