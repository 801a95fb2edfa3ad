/**
 * date, timestamp, timestamptz, time, timetz and interval: server text (DateStyle=ISO,
 * TimeZone=UTC, IntervalStyle=iso_8601) to ISO 8601 JSON strings.
 *
 * Server text                          JSON
 *   2026-11-21 10:00:00.123456+00      "2026-11-21T10:00:00.123456Z"   (timestamptz)
 *   2026-11-21 10:00:00.123456         "2026-11-21T10:00:00.123456"    (timestamp)
 *   0044-03-15 BC                      "-000043-03-15"                 (astronomical year, 6 digits)
 *   0001-01-01 BC                      "0000-01-01"                    (1 BC is year 0)
 *   10000-01-01                        "+010000-01-01"                 (years past 9999)
 *   infinity / -infinity               "infinity" / "-infinity"
 *   10:00:00+05:30 / 10:00:00+00       "10:00:00+05:30" / "10:00:00+00:00"   (timetz)
 *   P1Y2M3DT4H5M6.5S                   "P1Y2M3DT4H5M6.5S"              (interval, as printed)
 *
 * Years outside 0000-9999 use ISO 8601's expanded form the way ECMAScript's
 * Date.prototype.toISOString prints it (sign and six digits), so `new Date(value)` parses them.
 * Fractional seconds keep the server's digits (up to microseconds, trailing zeros dropped).
 * A timestamptz offset other than +00 (a session without TimeZone=UTC) is kept as ±hh:mm[:ss]
 * rather than converted, so the instant stays exact.
 */
import { invalidValue, isDigit } from './json-grammar.ts';

/** Index of the `-` ending the year (4 or more digits) at the start of `text`, or -1. */
function yearEnd(text: string): number {
  let i = 0;
  while (isDigit(text.charCodeAt(i))) i++;
  return i >= 4 && text.charCodeAt(i) === 45 ? i : -1;
}

/** True when `text` has `-MM-DD` at `at`. */
function isMonthDay(text: string, at: number): boolean {
  return (
    text.charCodeAt(at + 3) === 45 &&
    isDigit(text.charCodeAt(at + 1)) &&
    isDigit(text.charCodeAt(at + 2)) &&
    isDigit(text.charCodeAt(at + 4)) &&
    isDigit(text.charCodeAt(at + 5))
  );
}

/** Index after `HH:MM:SS[.f+]` at `at`, or -1. */
function timeEnd(text: string, at: number): number {
  if (
    !isDigit(text.charCodeAt(at)) ||
    !isDigit(text.charCodeAt(at + 1)) ||
    text.charCodeAt(at + 2) !== 58 ||
    !isDigit(text.charCodeAt(at + 3)) ||
    !isDigit(text.charCodeAt(at + 4)) ||
    text.charCodeAt(at + 5) !== 58 ||
    !isDigit(text.charCodeAt(at + 6)) ||
    !isDigit(text.charCodeAt(at + 7))
  ) {
    return -1;
  }
  let i = at + 8;
  if (text.charCodeAt(i) === 46 /* . */) {
    const digits = ++i;
    while (isDigit(text.charCodeAt(i))) i++;
    if (i === digits) return -1;
  }
  return i;
}

/** Index after a UTC offset `±HH[:MM[:SS]]` at `at`, or -1. */
function offsetEnd(text: string, at: number): number {
  const sign = text.charCodeAt(at);
  if ((sign !== 43 && sign !== 45) || !isDigit(text.charCodeAt(at + 1)) || !isDigit(text.charCodeAt(at + 2))) return -1;
  let i = at + 3;
  for (let part = 0; part < 2 && text.charCodeAt(i) === 58; part++) {
    if (!isDigit(text.charCodeAt(i + 1)) || !isDigit(text.charCodeAt(i + 2))) return -1;
    i += 3;
  }
  return i;
}

/** The offset at [start, end) as ISO 8601 `±hh:mm[:ss]`. */
function isoOffset(text: string, start: number, end: number): string {
  const offset = text.slice(start, end);
  return end - start === 3 ? `${offset}:00` : offset;
}

/** The year digits as ISO 8601: astronomical numbering for BC, expanded form outside 0000-9999. */
function isoYear(digits: string, bc: boolean): string {
  if (!bc) return digits.length === 4 ? digits : `+${digits.padStart(6, '0')}`;
  const year = Number(digits) - 1; // 1 BC is year 0, 2 BC is year -1
  return year === 0 ? '0000' : `-${String(year).padStart(6, '0')}`;
}

/** True when the text ends with " BC" at `at`, the only suffix ISO DateStyle prints. */
function isBc(text: string, at: number): boolean {
  return (
    text.length === at + 3 &&
    text.charCodeAt(at) === 32 &&
    text.charCodeAt(at + 1) === 66 &&
    text.charCodeAt(at + 2) === 67
  );
}

export function encodeDate(text: string): string {
  const y = yearEnd(text);
  if (y < 0 || !isMonthDay(text, y)) return infinityOr(text, 'date');
  const end = y + 6;
  if (text.length === end) return y === 4 ? `"${text}"` : `"${isoYear(text.slice(0, y), false)}${text.slice(y)}"`;
  if (!isBc(text, end)) throw invalidValue('date', text);
  return `"${isoYear(text.slice(0, y), true)}${text.slice(y, end)}"`;
}

function infinityOr(text: string, typeName: string): string {
  if (text === 'infinity') return '"infinity"';
  if (text === '-infinity') return '"-infinity"';
  throw invalidValue(typeName, text);
}

/** timestamp (withZone false) and timestamptz (withZone true). */
function encodeTimestampText(text: string, withZone: boolean): string {
  const typeName = withZone ? 'timestamptz' : 'timestamp';
  const y = yearEnd(text);
  if (y < 0 || !isMonthDay(text, y) || text.charCodeAt(y + 6) !== 32) return infinityOr(text, typeName);
  const clock = timeEnd(text, y + 7);
  if (clock < 0) throw invalidValue(typeName, text);
  const zoneEnd = withZone ? offsetEnd(text, clock) : clock;
  if (zoneEnd < 0) throw invalidValue(typeName, text);
  const bc = text.length !== zoneEnd;
  if (bc && !isBc(text, zoneEnd)) throw invalidValue(typeName, text);
  // "+00" is the only offset under TimeZone=UTC; say it the ISO way.
  const utc =
    withZone &&
    zoneEnd - clock === 3 &&
    text.charCodeAt(clock) === 43 &&
    text.charCodeAt(clock + 1) === 48 &&
    text.charCodeAt(clock + 2) === 48;
  const zone = !withZone ? '' : utc ? 'Z' : isoOffset(text, clock, zoneEnd);
  if (y === 4 && !bc) return `"${text.slice(0, 10)}T${text.slice(11, clock)}${zone}"`;
  return `"${isoYear(text.slice(0, y), bc)}${text.slice(y, y + 6)}T${text.slice(y + 7, clock)}${zone}"`;
}

// Nearly every value has a four-digit AD year and, for timestamptz, the +00 of TimeZone=UTC.
// One native regex test recognises that shape in about half the time of the general parser.
const COMMON_TIMESTAMP = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?$/;
const COMMON_TIMESTAMPTZ = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?\+00$/;

export function encodeTimestamp(text: string): string {
  if (COMMON_TIMESTAMP.test(text)) return `"${text.slice(0, 10)}T${text.slice(11)}"`;
  return encodeTimestampText(text, false);
}

export function encodeTimestamptz(text: string): string {
  if (COMMON_TIMESTAMPTZ.test(text)) return `"${text.slice(0, 10)}T${text.slice(11, text.length - 3)}Z"`;
  return encodeTimestampText(text, true);
}

export function encodeTime(text: string): string {
  if (timeEnd(text, 0) !== text.length) throw invalidValue('time', text);
  return `"${text}"`;
}

export function encodeTimetz(text: string): string {
  const clock = timeEnd(text, 0);
  const end = clock < 0 ? -1 : offsetEnd(text, clock);
  if (end !== text.length) throw invalidValue('timetz', text);
  return end - clock === 3 ? `"${text}:00"` : `"${text}"`;
}

/**
 * interval under IntervalStyle=iso_8601 ("P1Y2M3DT4H5M6.5S", "PT0S", "P-1D"), or "infinity" /
 * "-infinity" (PostgreSQL 17+). Any other style is refused rather than passed on: consumers are
 * promised ISO 8601 durations.
 */
export function encodeInterval(text: string): string {
  const n = text.length;
  if (n < 2 || text.charCodeAt(0) !== 80 /* P */) return infinityOr(text, 'interval');
  for (let i = 1; i < n; i++) {
    const c = text.charCodeAt(i);
    // digits - . and the designators Y M W D T H S
    if (
      !isDigit(c) &&
      c !== 45 &&
      c !== 46 &&
      c !== 89 &&
      c !== 77 &&
      c !== 87 &&
      c !== 68 &&
      c !== 84 &&
      c !== 72 &&
      c !== 83
    ) {
      throw invalidValue('interval', text, 'expected an ISO 8601 duration (IntervalStyle=iso_8601)');
    }
  }
  return `"${text}"`;
}
