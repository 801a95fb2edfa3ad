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

/** Whether the bytes at `[at, end)` are exactly `expected` (a byte loop: Buffer.compare's checks cost more). */
function isName(data: Buffer, at: number, end: number, expected: Buffer): boolean {
  const n = expected.length;
  if (end - at !== n) return false;
  for (let j = 0; j < n; j++) if (data[at + j] !== expected[j]) return false;
  return true;
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
 * A cursor over the members of one JSON object: `step()` moves to the next member and sets its
 * ranges. A class with fields rather than a callback per member: the scan runs for every line of
 * the sink (the profile of a 2M-row verify showed the closures and Buffer.compare taking a third
 * of the time), and the few cursors are reused from line to line.
 */
class MemberCursor {
  private data: Buffer = Buffer.alloc(0);
  private end = 0;
  private next = 0;
  private nextSeparator = 0;
  /** 0: more members may follow; 1 or 2: the object ended well; -1 or -2: malformed. */
  private finished = 0;
  nameStart = 0;
  nameEnd = 0;
  valueStart = 0;
  valueEnd = 0;
  /** The `{` before the first member, the `,` before the others. */
  separator = 0;
  /** Once the object ended well: the position of its closing `}`. */
  closeAt = -1;

  /** Starts at the object at `at` (its `{`); false when there is none. */
  open(data: Buffer, at: number, end: number): boolean {
    this.data = data;
    this.end = end;
    this.next = at + 1;
    this.nextSeparator = at;
    this.finished = data[at] === OPEN_BRACE ? 0 : -1;
    this.closeAt = -1;
    return this.finished === 0;
  }

  /**
   * Moves to the next member's name, leaving its value unread (`valueStart` set): the caller then
   * calls `skip()`, or reads the value itself and calls `resumeAt(valueEnd)`. False when there is none.
   */
  stepName(): boolean {
    if (this.finished !== 0) return false;
    const data = this.data;
    const end = this.end;
    const i = this.next;
    if (i >= end) {
      this.finished = -1;
      return false;
    }
    if (data[i] !== QUOTE) {
      // `}`: an empty object, or the end
      if (data[i] === 0x7d) {
        this.finished = 1;
        this.closeAt = i;
      } else this.finished = -1;
      return false;
    }
    const nameEnd = skipString(data, i, end);
    if (data[nameEnd] !== COLON) {
      this.finished = -1;
      return false;
    }
    this.nameStart = i;
    this.nameEnd = nameEnd;
    this.valueStart = nameEnd + 1;
    this.separator = this.nextSeparator;
    return true;
  }

  /** After `stepName()`: skips the value. */
  skip(): void {
    this.resumeAt(skipValue(this.data, this.valueStart, this.end));
  }

  /** After `stepName()`: the value ended at `valueEnd` (exclusive); goes on after it. */
  resumeAt(valueEnd: number): void {
    const data = this.data;
    this.valueEnd = valueEnd;
    if (data[valueEnd] === COMMA) {
      this.nextSeparator = valueEnd;
      this.next = valueEnd + 1;
    } else if (data[valueEnd] === 0x7d) {
      this.finished = 2;
      this.closeAt = valueEnd;
    } else this.finished = -2;
  }

  /** Moves to the next member; false when there is none (then `ok` says whether the object was well formed). */
  step(): boolean {
    if (!this.stepName()) return false;
    this.skip();
    return true;
  }

  /** After `step()` returned false (or at any point): whether the object is well formed so far. */
  get ok(): boolean {
    return this.finished >= 0;
  }
}

const outer = new MemberCursor();
const inner = new MemberCursor();

/**
 * Calls `visit(nameStart, nameEnd, valueStart, valueEnd, commaBefore)` for each member of the object
 * at `[at, end)` (at its `{`); stops early when `visit` returns true. Returns false on malformed input.
 * (For rare paths: the line scan uses the cursors directly.)
 */
export function forEachMember(
  data: Buffer,
  at: number,
  end: number,
  visit: (nameStart: number, nameEnd: number, valueStart: number, valueEnd: number, separator: number) => boolean,
): boolean {
  const cursor = new MemberCursor();
  if (!cursor.open(data, at, end)) return false;
  while (cursor.step())
    if (visit(cursor.nameStart, cursor.nameEnd, cursor.valueStart, cursor.valueEnd, cursor.separator)) return true;
  return cursor.ok;
}

/** The member `member`'s value range in the object at `at` (read with `inner`): false when absent or malformed. */
function memberValue(data: Buffer, at: number, end: number, member: Buffer): boolean {
  if (!inner.open(data, at, end)) return false;
  while (inner.step()) if (isName(data, inner.nameStart, inner.nameEnd, member)) return true;
  return false;
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
  let keyStart = -1;
  let keyEnd = -1;
  let valueStart = -1;
  let valueEnd = -1;
  try {
    if (!outer.open(data, start, end)) return false;
    let bodyScanned = false;
    while (outer.stepName()) {
      if (isName(data, outer.nameStart, outer.nameEnd, VALUE)) {
        valueStart = outer.valueStart;
        if (!format.withSchema && data[valueStart] === OPEN_BRACE) {
          // One pass over the value: its members are read as it is skipped (the source block
          // is half the line; skipping it and then walking it again cost twice).
          const bodyEnd = format.flat ? scanFlat(data, valueStart, end, out) : scanDebezium(data, valueStart, end, out);
          if (bodyEnd < 0) return false;
          bodyScanned = true;
          outer.resumeAt(bodyEnd);
        } else outer.skip();
        valueEnd = outer.valueEnd;
      } else {
        outer.skip();
        if (isName(data, outer.nameStart, outer.nameEnd, KEY)) {
          keyStart = outer.valueStart;
          keyEnd = outer.valueEnd;
        }
      }
    }
    if (!outer.ok || keyStart < 0 || valueStart < 0) return false;
    if (data[keyStart] !== NULL_BYTE) {
      if (format.withSchema) {
        if (!memberValue(data, keyStart, keyEnd, PAYLOAD)) return false;
        keyStart = inner.valueStart;
        keyEnd = inner.valueEnd;
      }
      out.keyStart = keyStart;
      out.keyEnd = keyEnd;
    }
    if (data[valueStart] === NULL_BYTE) {
      // A flat tombstone: the key's delete.
      if (!format.flat) return false;
      out.op = 'd';
      return true;
    }
    if (bodyScanned) return true;
    if (format.withSchema) {
      if (!memberValue(data, valueStart, valueEnd, PAYLOAD)) return false;
      valueStart = inner.valueStart;
      valueEnd = inner.valueEnd;
    }
    const bodyEnd = format.flat
      ? scanFlat(data, valueStart, valueEnd, out)
      : scanDebezium(data, valueStart, valueEnd, out);
    return bodyEnd >= 0;
  } catch (error) {
    if (error instanceof RangeError) return false;
    throw error;
  }
}

/** Scans the Debezium value object at `at`; returns the position after it, or -1 when malformed. */
function scanDebezium(data: Buffer, at: number, end: number, out: ScannedEvent): number {
  let beforeStart = -1;
  let beforeEnd = -1;
  let afterStart = -1;
  let afterEnd = -1;
  if (!inner.open(data, at, end)) return -1;
  while (inner.step()) {
    const ns = inner.nameStart;
    const ne = inner.nameEnd;
    const vs = inner.valueStart;
    if (isName(data, ns, ne, BEFORE)) {
      beforeStart = data[vs] === NULL_BYTE ? -1 : vs;
      beforeEnd = inner.valueEnd;
    } else if (isName(data, ns, ne, AFTER)) {
      afterStart = data[vs] === NULL_BYTE ? -1 : vs;
      afterEnd = inner.valueEnd;
    } else if (isName(data, ns, ne, OP)) out.op = opOf(data, vs, inner.valueEnd);
  }
  if (!inner.ok || out.op === undefined) return -1;
  const after = inner.closeAt + 1;
  // Rows without their closing brace (see the header).
  const rowStart = out.op === 'd' ? beforeStart : afterStart;
  if (rowStart >= 0) {
    out.rowStart = rowStart;
    out.rowEnd = (out.op === 'd' ? beforeEnd : afterEnd) - 1;
  }
  if (out.op === 'u' && beforeStart >= 0) {
    out.beforeStart = beforeStart;
    out.beforeEnd = beforeEnd - 1;
  }
  return after;
}

/** Scans the flat value object at `at`; returns the position after it, or -1 when malformed. */
function scanFlat(data: Buffer, at: number, end: number, out: ScannedEvent): number {
  // The metadata follow the row: the last `__op` member starts them (a column may be named __op too).
  let opSeparator = -1;
  let op: ScannedOp | undefined;
  if (!inner.open(data, at, end)) return -1;
  while (inner.step())
    if (isName(data, inner.nameStart, inner.nameEnd, FLAT_OP)) {
      opSeparator = inner.separator;
      op = opOf(data, inner.valueStart, inner.valueEnd);
    }
  if (!inner.ok || op === undefined || opSeparator < 0) return -1;
  out.op = op;
  if (op !== 't') {
    out.rowStart = at;
    // `{"a":1,"__op"`: the row is `{"a":1`; `{"__op"` (no fields): `{`.
    out.rowEnd = opSeparator === at ? at + 1 : opSeparator;
  }
  return inner.closeAt + 1;
}
