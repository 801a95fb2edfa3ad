/**
 * The JSON grammar, as allocation-free scanners over a string, and the one way a value encoder
 * fails. Encoders validate server text with these before splicing it into an event line, so the
 * rule "any input yields valid JSON or a CdcError" holds without building JS values.
 *
 * Scanners work on UTF-16 code units with `charCodeAt`: V8 keeps that loop tight on the flat
 * strings the pgoutput decoder produces, and nothing is allocated until output is built.
 */
import { CdcError } from '../core/errors.ts';

const HINT =
  'pgcdc reads values as printed under DateStyle=ISO, TimeZone=UTC, IntervalStyle=iso_8601, ' +
  'extra_float_digits=3 and bytea_output=hex; check that every connection sets these session options';

/** Converts the server's text output of one non-null value of this type to JSON text. */
export type JsonEncoder = (text: string) => string;

/**
 * The error every encoder throws for text its type cannot print. The message names the type and
 * shows at most 32 characters of the value: enough to debug, short enough not to flood logs with
 * row data.
 */
export function invalidValue(typeName: string, text: string, why?: string): CdcError {
  const sample = text.length > 32 ? `${text.slice(0, 32)}...` : text;
  const reason = why === undefined ? '' : ` (${why})`;
  return new CdcError('VALUE_INVALID', `invalid ${typeName} value ${JSON.stringify(sample)}${reason}`, { hint: HINT });
}

export function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}

/**
 * True when `text` is a JSON integer (`-?(0|[1-9][0-9]*)`, no sign when `unsigned`) of at most
 * `maxLength` characters. The length bound is the type's widest printed value, a cheap guard
 * that stops non-PostgreSQL text from passing as an int4.
 */
export function isJsonInteger(text: string, maxLength: number, unsigned: boolean): boolean {
  const n = text.length;
  if (n === 0 || n > maxLength) return false;
  let i = 0;
  if (text.charCodeAt(0) === 45 /* - */) {
    if (unsigned || n === 1) return false;
    i = 1;
  }
  // A leading zero is only valid as the whole number: JSON forbids "007".
  if (text.charCodeAt(i) === 48) return i + 1 === n;
  for (; i < n; i++) if (!isDigit(text.charCodeAt(i))) return false;
  return true;
}

/** Index just past the JSON number starting at `start`, or -1 when there is none. */
export function scanNumber(text: string, start: number): number {
  const n = text.length;
  let i = start;
  if (i < n && text.charCodeAt(i) === 45 /* - */) i++;
  if (i >= n) return -1;
  const first = text.charCodeAt(i);
  if (first === 48) i++;
  else if (first >= 49 && first <= 57) while (i < n && isDigit(text.charCodeAt(i))) i++;
  else return -1;
  if (i < n && text.charCodeAt(i) === 46 /* . */) {
    const digits = ++i;
    while (i < n && isDigit(text.charCodeAt(i))) i++;
    if (i === digits) return -1;
  }
  if (i < n && (text.charCodeAt(i) | 32) === 101 /* e or E */) {
    i++;
    if (i < n && (text.charCodeAt(i) === 43 || text.charCodeAt(i) === 45)) i++;
    const digits = i;
    while (i < n && isDigit(text.charCodeAt(i))) i++;
    if (i === digits) return -1;
  }
  return i;
}

function isHex(code: number): boolean {
  return isDigit(code) || ((code | 32) >= 97 && (code | 32) <= 102);
}

/** Index just past the JSON string whose opening quote is at `start`, or -1. */
export function scanString(text: string, start: number): number {
  const n = text.length;
  let i = start + 1;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 34 /* " */) return i + 1;
    if (c < 0x20) return -1; // raw control characters must be escaped inside JSON strings
    if (c === 92 /* \ */) {
      const e = text.charCodeAt(i + 1); // NaN past the end, which matches nothing below
      if (e === 117 /* u */) {
        if (i + 5 >= n) return -1;
        for (let k = i + 2; k < i + 6; k++) if (!isHex(text.charCodeAt(k))) return -1;
        i += 6;
        continue;
      }
      // " \ / b f n r t
      if (e !== 34 && e !== 92 && e !== 47 && e !== 98 && e !== 102 && e !== 110 && e !== 114 && e !== 116) return -1;
      i += 2;
      continue;
    }
    i++;
  }
  return -1;
}

/** The text is not JSON. */
export const JSON_INVALID = 0;
/** The text is JSON and fits on one line: splice it in as it is. */
export const JSON_ONE_LINE = 1;
/** The text is JSON with tabs or line breaks between tokens: compact it first (JSONL is one event a line). */
export const JSON_MULTI_LINE = 2;
export type JsonCheck = typeof JSON_INVALID | typeof JSON_ONE_LINE | typeof JSON_MULTI_LINE;

const IN_ARRAY = 1;
const IN_OBJECT = 2;
/** Open containers of the document being checked; reused across calls and grown on demand. */
let containers = new Uint8Array(64);
/** Set by `skipSpace` when it passes a tab or line break (checkJson is synchronous, so one flag is enough). */
let sawLineBreak = false;

function pushContainer(depth: number, kind: number): void {
  if (depth === containers.length) {
    const grown = new Uint8Array(containers.length * 2);
    grown.set(containers);
    containers = grown;
  }
  containers[depth] = kind;
}

function skipSpace(text: string, start: number): number {
  let i = start;
  for (;;) {
    const c = text.charCodeAt(i);
    if (c === 32) i++;
    else if (c === 9 || c === 10 || c === 13) {
      sawLineBreak = true;
      i++;
    } else return i;
  }
}

/** Parses `"key" :` at `start`; returns the index after the colon and its whitespace, or -1. */
function objectKey(text: string, start: number): number {
  if (text.charCodeAt(start) !== 34) return -1;
  const end = scanString(text, start);
  if (end < 0) return -1;
  const colon = skipSpace(text, end);
  return text.charCodeAt(colon) === 58 /* : */ ? skipSpace(text, colon + 1) : -1;
}

/**
 * Checks that `text` is exactly one JSON value, optionally surrounded by whitespace. Iterative
 * (an explicit container stack), so deeply nested documents cannot overflow the call stack.
 */
export function checkJson(text: string): JsonCheck {
  sawLineBreak = false;
  let depth = 0;
  let i = skipSpace(text, 0);
  for (;;) {
    // A value starts at i.
    const c = text.charCodeAt(i);
    if (c === 91 /* [ */ || c === 123 /* { */) {
      pushContainer(depth++, c === 91 ? IN_ARRAY : IN_OBJECT);
      i = skipSpace(text, i + 1);
      if (text.charCodeAt(i) === (c === 91 ? 93 : 125)) {
        depth--;
        i++;
      } else {
        if (c === 123) {
          i = objectKey(text, i);
          if (i < 0) return JSON_INVALID;
        }
        continue; // the first member's value
      }
    } else {
      if (c === 34) i = scanString(text, i);
      else if (c === 45 || isDigit(c)) i = scanNumber(text, i);
      else if (c === 116) i = text.startsWith('true', i) ? i + 4 : -1;
      else if (c === 102) i = text.startsWith('false', i) ? i + 5 : -1;
      else if (c === 110) i = text.startsWith('null', i) ? i + 4 : -1;
      else return JSON_INVALID;
      if (i < 0) return JSON_INVALID;
    }
    // After a value: close containers until a comma leads to the next value, or the text ends.
    for (;;) {
      i = skipSpace(text, i);
      if (depth === 0) {
        if (i !== text.length) return JSON_INVALID;
        return sawLineBreak ? JSON_MULTI_LINE : JSON_ONE_LINE;
      }
      const kind = containers[depth - 1];
      const s = text.charCodeAt(i);
      if (s === 44 /* , */) {
        i = skipSpace(text, i + 1);
        if (kind === IN_OBJECT) {
          i = objectKey(text, i);
          if (i < 0) return JSON_INVALID;
        }
        break;
      }
      if ((s === 93 && kind === IN_ARRAY) || (s === 125 && kind === IN_OBJECT)) {
        depth--;
        i++;
        continue;
      }
      return JSON_INVALID;
    }
  }
}

/**
 * `text` (already checked valid) with all whitespace between tokens removed. Only `json` values
 * typed with line breaks need this; string contents are copied untouched.
 */
export function compactJson(text: string): string {
  let out = '';
  let run = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++;
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 32 || c === 9 || c === 10 || c === 13) {
      out += text.slice(run, i);
      run = i + 1;
    }
  }
  return out + text.slice(run);
}
