/**
 * The text format of `COPY ... TO STDOUT` (no options: tab delimiter, `\N` null), parsed back into
 * the values the server's output functions printed. Those are the same strings pgoutput sends for
 * the same values under the same session settings, so snapshot rows go through the very value
 * encoders (source/values.ts) and serializers the change stream uses.
 *
 * The format (PostgreSQL docs, COPY "Text Format"): one row per line ending in `\n`, fields
 * separated by `\t`, NULL written `\N`, and in a value the bytes backslash, newline, carriage
 * return, tab, backspace, form feed and vertical tab written `\\ \n \r \t \b \f \v`. So a raw
 * newline byte always ends a row and a raw tab always ends a field, and both are ASCII: a chunk can
 * be cut at its last newline byte without splitting a UTF-8 character. COPY FROM also accepts
 * `\ooo` (octal) and `\xHH` (hex) byte escapes and any other backslashed character as itself; COPY
 * TO never writes those, but the parser accepts them so that it is the format's exact inverse.
 */
import { malformedCopy, unescapeCopyText } from '../source/copy-row.ts';

export { unescapeCopyText } from '../source/copy-row.ts';

/** One row: each column's output-function text, or null. */
export type CopyRow = (string | null)[];

const NEWLINE = 0x0a;

const malformed = malformedCopy;

/**
 * Incremental parser. Feed it the chunks of a COPY stream in order with `push`, then call `end`.
 * Chunks may split rows anywhere; complete rows are appended to `out` as soon as their newline
 * arrives, so memory holds at most one partial row besides the caller's rows.
 */
export class CopyTextParser {
  private readonly columns: number;
  private carry: Buffer | undefined;
  /** Rows parsed so far. */
  rows = 0;

  /** `columns`: how many fields every row must have (the SELECT list length). */
  constructor(columns: number) {
    this.columns = columns;
  }

  push(chunk: Buffer, out: CopyRow[]): void {
    let data = chunk;
    if (this.carry !== undefined) {
      data = Buffer.concat([this.carry, chunk]);
      this.carry = undefined;
    }
    const last = data.lastIndexOf(NEWLINE);
    if (last < 0) {
      // Copied: the stream may hand out views of buffers it reuses.
      this.carry = Buffer.from(data);
      return;
    }
    if (last + 1 < data.length) this.carry = Buffer.from(data.subarray(last + 1));
    this.rows += parseLines(data.toString('utf8', 0, last + 1), this.columns, out);
  }

  /** The stream ended: anything left is a row without its newline, which COPY never sends. */
  end(): void {
    if (this.carry !== undefined && this.carry.length > 0) throw malformed('the last row has no newline');
    this.carry = undefined;
  }
}

/** Parses whole lines (`text` ends with a newline); returns how many rows were appended. */
export function parseLines(text: string, columns: number, out: CopyRow[]): number {
  let pos = 0;
  let rows = 0;
  // The next tab at or after `pos`, carried across rows so each tab is searched for once.
  let tab = text.indexOf('\t');
  const length = text.length;
  while (pos < length) {
    const newline = text.indexOf('\n', pos);
    if (newline < 0) throw malformed('a row has no newline');
    const row: CopyRow = new Array<string | null>(columns);
    if (columns === 0) {
      if (newline !== pos) throw malformed('a row of a zero-column result is not empty');
    } else {
      for (let c = 0; c < columns - 1; c++) {
        if (tab < 0 || tab > newline) throw malformed(`a row has ${c + 1} fields, expected ${columns}`);
        row[c] = field(text.slice(pos, tab));
        pos = tab + 1;
        tab = text.indexOf('\t', pos);
      }
      if (tab >= 0 && tab < newline) throw malformed(`a row has more than ${columns} fields`);
      row[columns - 1] = field(text.slice(pos, newline));
    }
    out.push(row);
    rows++;
    pos = newline + 1;
  }
  return rows;
}

function field(raw: string): string | null {
  if (raw.length === 2 && raw === '\\N') return null;
  return raw.includes('\\') ? unescapeCopyText(raw) : raw;
}

// Characters COPY TO escapes, and their escapes; everything else goes out as is.
const NEEDS_ESCAPE = /[\\\n\r\t\b\f\v]/g;
const ESCAPES: Readonly<Record<string, string>> = {
  '\\': '\\\\',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
  '\b': '\\b',
  '\f': '\\f',
  '\v': '\\v',
};

/** One field as COPY TO writes it (for tests and tools; the reader never needs it). */
export function escapeCopyText(value: string | null): string {
  if (value === null) return '\\N';
  return value.replace(NEEDS_ESCAPE, (c) => ESCAPES[c] ?? c);
}
