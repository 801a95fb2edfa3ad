/**
 * Rows of `COPY ... TO STDOUT` text read in place: the snapshot's fast path (docs/benchmarks.md).
 * A cursor walks a buffer of whole rows and records where each field of the current row starts and
 * ends, so a serializer (envelope/copy-values.ts) writes each value's JSON straight from the COPY
 * bytes: no string, array or object is made per row or per field.
 *
 * The format (PostgreSQL docs, COPY "Text Format"): one row per line ending in `\n`, fields
 * separated by `\t`, NULL written `\N`, and in a value the bytes backslash, newline, carriage
 * return, tab, backspace, form feed and vertical tab written `\\ \n \r \t \b \f \v`. So a raw
 * newline byte always ends a row and a raw tab always ends a field. COPY FROM also accepts `\ooo`
 * (octal) and `\xHH` (hex) byte escapes and any other backslashed character as itself; COPY TO never
 * writes those, but `copyFieldText` accepts them, so it is the format's exact inverse.
 */
import { CdcError } from '../core/errors.ts';

/**
 * One row of COPY text, in place: field i is `data[starts[i], ends[i])`, still escaped; a NULL
 * field has `starts[i] === -1`. Valid until the cursor moves.
 */
export interface CopyFields {
  readonly data: Buffer;
  readonly starts: Int32Array;
  readonly ends: Int32Array;
}

const TAB = 0x09;
const NEWLINE = 0x0a;
const BACKSLASH = 0x5c;
const CAPITAL_N = 0x4e;
const EMPTY = Buffer.alloc(0);

export function malformedCopy(detail: string): CdcError {
  return new CdcError('SOURCE_QUERY_FAILED', `COPY output is malformed: ${detail}`, {
    hint: 'this is a bug in pgcdc or an unexpected server; please report it with the server version',
  });
}

/** Walks the rows of a buffer of whole COPY text rows (it ends with a newline, or is empty). */
export class CopyRowCursor implements CopyFields {
  data: Buffer = EMPTY;
  readonly starts: Int32Array;
  readonly ends: Int32Array;
  private readonly columns: number;
  private at = 0;

  /** `columns`: how many fields every row must have (the SELECT list length). */
  constructor(columns: number) {
    this.columns = columns;
    this.starts = new Int32Array(columns);
    this.ends = new Int32Array(columns);
  }

  /** Starts over on `data`. */
  reset(data: Buffer): void {
    this.data = data;
    this.at = 0;
  }

  /** Moves to the next row; false after the last. Throws on a row of the wrong shape. */
  next(): boolean {
    const data = this.data;
    const length = data.length;
    let at = this.at;
    if (at >= length) return false;
    const columns = this.columns;
    if (columns === 0) {
      if (data[at] !== NEWLINE) throw malformedCopy('a row of a zero-column result is not empty');
      this.at = at + 1;
      return true;
    }
    for (let c = 0; c < columns; c++) {
      const start = at;
      let byte = 0;
      while (at < length) {
        byte = data[at] as number;
        if (byte === TAB || byte === NEWLINE) break;
        at++;
      }
      if (at >= length) throw malformedCopy('a row has no newline');
      const last = c === columns - 1;
      if (byte === NEWLINE && !last) throw malformedCopy(`a row has ${c + 1} fields, expected ${columns}`);
      if (byte === TAB && last) throw malformedCopy(`a row has more than ${columns} fields`);
      const isNull = at - start === 2 && data[start] === BACKSLASH && data[start + 1] === CAPITAL_N;
      this.starts[c] = isNull ? -1 : start;
      this.ends[c] = at;
      at++;
    }
    this.at = at;
    return true;
  }
}

/** How many rows a buffer of whole COPY text rows holds (its newline bytes). */
export function countCopyRows(data: Buffer): number {
  let rows = 0;
  for (let at = data.indexOf(NEWLINE); at >= 0; at = data.indexOf(NEWLINE, at + 1)) rows++;
  return rows;
}

/** Field `index` of the cursor's row as text (escapes undone), or null. */
export function copyFieldText(fields: CopyFields, index: number): string | null {
  const start = fields.starts[index] as number;
  if (start < 0) return null;
  const end = fields.ends[index] as number;
  const raw = fields.data.toString('utf8', start, end);
  const backslash = fields.data.indexOf(BACKSLASH, start);
  return backslash >= 0 && backslash < end ? unescapeCopyText(raw) : raw;
}

const SIMPLE_ESCAPES: Readonly<Record<string, string>> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };

function isOctal(c: string): boolean {
  return c >= '0' && c <= '7';
}

function isHex(c: string): boolean {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/**
 * Undoes the backslash escapes of one field (not `\N`, which only means NULL as a whole field).
 * Consecutive byte escapes (`\ooo`, `\xHH`) are decoded together as UTF-8, the client encoding.
 */
export function unescapeCopyText(raw: string): string {
  let out = '';
  let bytes: number[] = [];
  const flushBytes = (): void => {
    if (bytes.length > 0) {
      out += Buffer.from(bytes).toString('utf8');
      bytes = [];
    }
  };
  let i = 0;
  while (i < raw.length) {
    const c = raw.charAt(i);
    if (c !== '\\') {
      flushBytes();
      const next = raw.indexOf('\\', i);
      const end = next < 0 ? raw.length : next;
      out += raw.slice(i, end);
      i = end;
      continue;
    }
    if (i + 1 >= raw.length) throw malformedCopy('a value ends with a lone backslash');
    const e = raw.charAt(i + 1);
    if (isOctal(e)) {
      let j = i + 1;
      let value = 0;
      while (j < raw.length && j < i + 4 && isOctal(raw.charAt(j))) value = value * 8 + Number(raw.charAt(j++));
      bytes.push(value & 0xff);
      i = j;
    } else if (e === 'x' && i + 2 < raw.length && isHex(raw.charAt(i + 2))) {
      const two = i + 3 < raw.length && isHex(raw.charAt(i + 3));
      bytes.push(Number.parseInt(raw.slice(i + 2, two ? i + 4 : i + 3), 16));
      i += two ? 4 : 3;
    } else {
      flushBytes();
      out += SIMPLE_ESCAPES[e] ?? e;
      i += 2;
    }
  }
  flushBytes();
  return out;
}
