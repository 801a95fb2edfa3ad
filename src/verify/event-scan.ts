/**
 * Takes one event line apart without parsing its JSON (envelope/json.ts and flat.ts write the
 * layouts; sinks/event-line.ts skips values): its position (the LSN its id starts with), its op,
 * and where its key and row are, as byte ranges of the line. What a verify compares is those bytes:
 * the source side writes the same key and row with the same RowWriter (source-reader.ts), so equal
 * rows are equal bytes.
 *
 * The line: {"id":"<lsn>:...","topic":"..","key":<key>|null[,"headers":{..}],"value":<value>}
 * - Debezium (`envelope.type: debezium`): value {"before":..,"after":..,"source":{..},"op":"c",..};
 * - flat: value {<row fields>,"__op":"c","__deleted":false,...} or null (a tombstone);
 * - json-with-schema wraps the key and the value in {"schema":..,"payload":<the same>}.
 *
 * A row range runs from its `{` to its last field, without the closing brace: `{"id":1,"v":"a"`
 * (an empty row is `{`). That is also how RowWriter writes it, and under the flat envelope the row
 * ends where the metadata fields begin.
 */
import { COLON, COMMA, OPEN_BRACE, QUOTE, skipString, skipValue } from '../sinks/event-line.ts';

/** The ops a table's events carry (`m` messages and transaction events have topics of their own). */
export type ScannedOp = 'c' | 'u' | 'd' | 'r' | 't';

/** One line, scanned: reused from line to line (nothing is allocated per line). */
export interface ScannedEvent {
  /** The LSN the id starts with: the commit LSN of a change, the snapshot's point of a read. */
  lsn: number;
  op: ScannedOp | undefined;
  /** The key object's bytes, braces included; -1 when the key is null. */
  keyStart: number;
  keyEnd: number;
  /** The row the event leaves (after for c/u/r); for d the old row when the event has one; -1: none. */
  rowStart: number;
  rowEnd: number;
  /** The old row of an update when the event has one (Debezium envelope, REPLICA IDENTITY FULL); -1: none. */
  beforeStart: number;
  beforeEnd: number;
}

export function emptyScan(): ScannedEvent {
  return { lsn: -1, op: undefined, keyStart: -1, keyEnd: -1, rowStart: -1, rowEnd: -1, beforeStart: -1, beforeEnd: -1 };
}

export interface ScanFormat {
  readonly withSchema: boolean;
  readonly flat: boolean;
}

const name = (text: string): Buffer => Buffer.from(`"${text}"`, 'utf8');
const KEY = name('key');
const VALUE = name('value');
const PAYLOAD = name('payload');
const BEFORE = name('before');
const AFTER = name('after');
const OP = name('op');
const FLAT_OP = name('__op');
const NULL_BYTE = 0x6e; // n
const SLASH = 0x2f;

/** Whether the bytes at `[at, end)` are exactly `expected`. */
function isName(data: Buffer, at: number, end: number, expected: Buffer): boolean {
  return end - at === expected.length && data.compare(expected, 0, expected.length, at, end) === 0;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/** The LSN `X/Y` at `at` (an id's head, ended by `:`), or -1. */
function idLsn(data: Buffer, at: number, end: number): number {
  let hi = 0;
  let lo = 0;
  let i = at;
  let digits = 0;
  for (; i < end && data[i] !== SLASH; i++, digits++) {
    const v = hexValue(data[i] as number);
    if (v < 0 || digits >= 8) return -1;
    hi = hi * 16 + v;
  }
  if (i >= end || digits === 0) return -1;
  digits = 0;
  for (i++; i < end && data[i] !== COLON; i++, digits++) {
    const v = hexValue(data[i] as number);
    if (v < 0 || digits >= 8) return -1;
    lo = lo * 16 + v;
  }
  if (digits === 0) return -1;
  return hi * 0x1_0000_0000 + lo;
}

/**
 * Calls `visit(nameStart, nameEnd, valueStart, valueEnd, commaBefore)` for each member of the object
 * at `[at, end)` (at its `{`); stops early when `visit` returns true. Returns false on malformed input.
 */
export function forEachMember(
  data: Buffer,
  at: number,
  end: number,
  visit: (nameStart: number, nameEnd: number, valueStart: number, valueEnd: number, separator: number) => boolean,
): boolean {
  if (data[at] !== OPEN_BRACE) return false;
  let i = at + 1;
  let separator = at;
  while (i < end) {
    if (data[i] !== QUOTE) return data[i] === 0x7d; // `}`: an empty object, or the end
    const nameEnd = skipString(data, i, end);
    if (data[nameEnd] !== COLON) return false;
    const valueEnd = skipValue(data, nameEnd + 1, end);
    if (visit(i, nameEnd, nameEnd + 1, valueEnd, separator)) return true;
    if (data[valueEnd] !== COMMA) return data[valueEnd] === 0x7d;
    separator = valueEnd;
    i = valueEnd + 1;
  }
  return false;
}

/** The member `member`'s value range in the object at `at`, or undefined. */
function memberValue(data: Buffer, at: number, end: number, member: Buffer): [number, number] | undefined {
  let found: [number, number] | undefined;
  forEachMember(data, at, end, (ns, ne, vs, ve) => {
    if (!isName(data, ns, ne, member)) return false;
    found = [vs, ve];
    return true;
  });
  return found;
}

function opOf(data: Buffer, start: number, end: number): ScannedOp | undefined {
  if (end - start !== 3 || data[start] !== QUOTE) return undefined;
  switch (data[start + 1]) {
    case 0x63:
      return 'c';
    case 0x75:
      return 'u';
    case 0x64:
      return 'd';
    case 0x72:
      return 'r';
    case 0x74:
      return 't';
    default:
      return undefined;
  }
}

/**
 * Scans the line at `[start, end)` (no newline) into `out`. Returns false when it is not an event
 * line of `format` (then `out` is undefined-ish and must not be used).
 */
export function scanEventLine(
  data: Buffer,
  start: number,
  end: number,
  format: ScanFormat,
  out: ScannedEvent,
): boolean {
  out.op = undefined;
  out.keyStart = out.keyEnd = out.rowStart = out.rowEnd = out.beforeStart = out.beforeEnd = -1;
  // `{"id":"` then the LSN.
  out.lsn = idLsn(data, start + 7, end);
  if (out.lsn < 0) return false;
  let key: [number, number] | undefined;
  let value: [number, number] | undefined;
  try {
    const ok = forEachMember(data, start, end, (ns, ne, vs, ve) => {
      if (isName(data, ns, ne, KEY)) key = [vs, ve];
      else if (isName(data, ns, ne, VALUE)) value = [vs, ve];
      return false;
    });
    if (!ok || key === undefined || value === undefined) return false;
    if (data[key[0]] !== NULL_BYTE) {
      const payload = format.withSchema ? memberValue(data, key[0], key[1], PAYLOAD) : key;
      if (payload === undefined) return false;
      out.keyStart = payload[0];
      out.keyEnd = payload[1];
    }
    if (data[value[0]] === NULL_BYTE) {
      // A flat tombstone: the key's delete.
      if (!format.flat) return false;
      out.op = 'd';
      return true;
    }
    const body = format.withSchema ? memberValue(data, value[0], value[1], PAYLOAD) : value;
    if (body === undefined) return false;
    return format.flat ? scanFlat(data, body[0], body[1], out) : scanDebezium(data, body[0], body[1], out);
  } catch (error) {
    if (error instanceof RangeError) return false;
    throw error;
  }
}

function scanDebezium(data: Buffer, at: number, end: number, out: ScannedEvent): boolean {
  let before: [number, number] | undefined;
  let after: [number, number] | undefined;
  const ok = forEachMember(data, at, end, (ns, ne, vs, ve) => {
    if (isName(data, ns, ne, BEFORE)) before = data[vs] === NULL_BYTE ? undefined : [vs, ve];
    else if (isName(data, ns, ne, AFTER)) after = data[vs] === NULL_BYTE ? undefined : [vs, ve];
    else if (isName(data, ns, ne, OP)) out.op = opOf(data, vs, ve);
    return false;
  });
  if (!ok || out.op === undefined) return false;
  // Rows without their closing brace (see the header).
  const row = out.op === 'd' ? before : after;
  if (row !== undefined) {
    out.rowStart = row[0];
    out.rowEnd = row[1] - 1;
  }
  if (out.op === 'u' && before !== undefined) {
    out.beforeStart = before[0];
    out.beforeEnd = before[1] - 1;
  }
  return true;
}

function scanFlat(data: Buffer, at: number, end: number, out: ScannedEvent): boolean {
  // The metadata follow the row: the last `__op` member starts them (a column may be named __op too).
  let opSeparator = -1;
  let op: ScannedOp | undefined;
  const ok = forEachMember(data, at, end, (ns, ne, vs, ve, separator) => {
    if (isName(data, ns, ne, FLAT_OP)) {
      opSeparator = separator;
      op = opOf(data, vs, ve);
    }
    return false;
  });
  if (!ok || op === undefined || opSeparator < 0) return false;
  out.op = op;
  if (op !== 't') {
    out.rowStart = at;
    // `{"a":1,"__op"`: the row is `{"a":1`; `{"__op"` (no fields): `{`.
    out.rowEnd = opSeparator === at ? at + 1 : opSeparator;
  }
  return true;
}
