/**
 * Column values written as JSON straight from COPY text bytes (source/copy-row.ts): the snapshot's
 * fast path. The output is byte for byte what the string path writes for the same value (the
 * column's encoder on the unescaped text, or a JSON string): each writer handles the common shapes
 * at byte level and hands anything else to that path, so there is one definition of each value.
 *
 * - text-like columns (plain string encoders): COPY's escapes `\n \r \t \b \f \\` become the JSON
 *   escapes of the same characters, `\v` becomes `\u000b`, `"` is escaped and other control bytes
 *   become `\u00xx`, as JSON.stringify writes them; UTF-8 is copied as is once checked valid.
 * - integers (int2, int4, int8, oid, xid...): the digits are copied once checked against the
 *   encoder's grammar (values.ts integerLimits).
 * - bool: `t` and `f`.
 * - anything else: the field's text through the column's encoder, as the stream path does.
 */
import { isUtf8 } from 'node:buffer';
import { copyFieldText, type CopyFields } from '../source/copy-row.ts';
import type { ColumnSchema } from '../source/relations.ts';
import { integerLimits, isBoolEncoder } from '../source/values.ts';
import type { LineWriter } from './row-writer.ts';

/** How a column's COPY bytes are written. */
export const CopyWrite = { text: 0, integer: 1, bool: 2, encoded: 3 } as const;

/** Per column of a table: how its values are written, and an integer's grammar. */
export interface CopyPlan {
  readonly kinds: Uint8Array;
  /** Per column: an integer's maximum length, negative when unsigned. */
  readonly limits: Int32Array;
}

export function copyPlan(columns: readonly ColumnSchema[]): CopyPlan {
  const kinds = new Uint8Array(columns.length);
  const limits = new Int32Array(columns.length);
  columns.forEach((column, i) => {
    const integer = integerLimits(column.encode);
    if (column.plainString) kinds[i] = CopyWrite.text;
    else if (integer !== undefined) {
      kinds[i] = CopyWrite.integer;
      limits[i] = integer.unsigned ? -integer.maxLength : integer.maxLength;
    } else if (isBoolEncoder(column.encode)) kinds[i] = CopyWrite.bool;
    else kinds[i] = CopyWrite.encoded;
  });
  return { kinds, limits };
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const MINUS = 0x2d;
const ZERO = 0x30;
const NINE = 0x39;
const LOWER_T = 0x74;
const LOWER_F = 0x66;
const TRUE = Buffer.from('true');
const FALSE = Buffer.from('false');
const HEX = Buffer.from('0123456789abcdef');

/** Writes field `index` (not NULL) of `row`, a column of `column` planned as `plan`. */
export function writeCopyValue(
  w: LineWriter,
  row: CopyFields,
  index: number,
  column: ColumnSchema,
  plan: CopyPlan,
): void {
  const start = row.starts[index] as number;
  const end = row.ends[index] as number;
  switch (plan.kinds[index]) {
    case CopyWrite.text:
      if (writeCopyString(w, row.data, start, end)) return;
      w.jsonString(copyFieldText(row, index) as string);
      return;
    case CopyWrite.integer:
      if (writeCopyInteger(w, row.data, start, end, plan.limits[index] as number)) return;
      break;
    case CopyWrite.bool:
      if (end - start === 1 && row.data[start] === LOWER_T) return w.raw(TRUE);
      if (end - start === 1 && row.data[start] === LOWER_F) return w.raw(FALSE);
      break;
  }
  // The column's encoder, which also throws the right error for a value it refuses.
  w.text(column.encode(copyFieldText(row, index) as string));
}

/**
 * `data[start, end)`, a COPY text field, as a JSON string; false (nothing written) for what only
 * the string path handles: byte escapes (`\ooo`, `\xHH`, never written by COPY TO) and invalid UTF-8.
 */
function writeCopyString(w: LineWriter, data: Buffer, start: number, end: number): boolean {
  // At most 6 bytes per input byte (`\u00xx`), and the quotes.
  const slab = w.room((end - start) * 6 + 2);
  let at = w.offset;
  slab[at++] = QUOTE;
  let nonAscii = false;
  for (let i = start; i < end; i++) {
    const byte = data[i] as number;
    if (byte >= 0x20 && byte !== QUOTE && byte !== BACKSLASH) {
      if (byte >= 0x80) nonAscii = true;
      slab[at++] = byte;
    } else if (byte === QUOTE) {
      slab[at++] = BACKSLASH;
      slab[at++] = QUOTE;
    } else if (byte === BACKSLASH) {
      const escaped = data[++i];
      switch (escaped) {
        case 0x6e: // n
        case 0x72: // r
        case 0x74: // t
        case 0x62: // b
        case 0x66: // f
        case BACKSLASH:
          slab[at++] = BACKSLASH;
          slab[at++] = escaped;
          break;
        case 0x76: // v: JSON has no \v
          at = unicodeEscape(slab, at, 0x0b);
          break;
        default:
          return false;
      }
    } else at = unicodeEscape(slab, at, byte);
  }
  if (nonAscii && !isUtf8(data.subarray(start, end))) return false;
  slab[at++] = QUOTE;
  w.advance(at);
  return true;
}

/** `\u00xx` for a control byte, as JSON.stringify writes it. */
function unicodeEscape(slab: Buffer, at: number, byte: number): number {
  slab[at] = BACKSLASH;
  slab[at + 1] = 0x75; // u
  slab[at + 2] = ZERO;
  slab[at + 3] = ZERO;
  slab[at + 4] = HEX[byte >> 4] as number;
  slab[at + 5] = HEX[byte & 15] as number;
  return at + 6;
}

/** The digits as they are when they meet the integer grammar (values.ts isJsonInteger); false otherwise. */
function writeCopyInteger(w: LineWriter, data: Buffer, start: number, end: number, limit: number): boolean {
  const n = end - start;
  const unsigned = limit < 0;
  if (n === 0 || n > (unsigned ? -limit : limit)) return false;
  let i = start;
  if (data[i] === MINUS) {
    if (unsigned || n === 1) return false;
    i++;
  }
  if (data[i] === ZERO) {
    if (i + 1 !== end) return false;
  } else {
    for (; i < end; i++) {
      const byte = data[i] as number;
      if (byte < ZERO || byte > NINE) return false;
    }
  }
  const slab = w.room(n);
  let at = w.offset;
  for (let j = start; j < end; j++) slab[at++] = data[j] as number;
  w.advance(at);
  return true;
}
