/**
 * Log sequence numbers in their text form, "X/Y": the high and low 32-bit halves of the 64-bit WAL
 * position in hexadecimal, as `pg_lsn` prints them and as pgcdc stores them in offsets and event ids.
 *
 * LSNs are plain numbers (see messages.ts): exact below 2^53, which is 8 PiB of WAL. Anything that
 * would not be exact is refused instead of being rounded.
 *
 * Error code: invalid text throws `CdcError('PROTOCOL_INVALID')`, because most LSN text comes from
 * the server (slot and WAL positions). Callers parsing user input (config, CLI flags) or stored state
 * should use `tryParseLsn` and raise their own CONFIG_INVALID / OFFSETS_CORRUPT naming where the
 * text came from.
 */
import { CdcError } from '../core/errors.ts';
import type { Lsn } from './messages.ts';

const TWO_POW_32 = 0x1_0000_0000;
/** 2^21: a high half at or above this puts the LSN at or past 2^53. */
const MAX_SAFE_HIGH = 0x20_0000;

/** 1 to 8 hex digits on each side; PostgreSQL accepts the same (and 18 prints the low half unpadded). */
const LSN_TEXT = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/** "16/B374D848" -> 0x16_B374D848, or undefined when `text` is not an LSN or is not exact as a number. */
export function tryParseLsn(text: string): Lsn | undefined {
  const match = LSN_TEXT.exec(text);
  if (match === null) return undefined;
  const hi = Number.parseInt(match[1] as string, 16);
  const lo = Number.parseInt(match[2] as string, 16);
  if (hi >= MAX_SAFE_HIGH) return undefined;
  return hi * TWO_POW_32 + lo;
}

/** "16/B374D848" -> 0x16_B374D848. Throws PROTOCOL_INVALID on anything else (see the module doc). */
export function parseLsn(text: string): Lsn {
  const lsn = tryParseLsn(text);
  if (lsn !== undefined) return lsn;
  const shown = text.length > 40 ? `${text.slice(0, 40)}...` : text;
  const tooLarge = LSN_TEXT.test(text);
  throw new CdcError(
    'PROTOCOL_INVALID',
    tooLarge
      ? `LSN "${shown}" is beyond 2^53 bytes of WAL, which pgcdc cannot represent exactly`
      : `"${shown}" is not an LSN: expected two hexadecimal numbers of 1 to 8 digits separated by "/", like ` +
          `"16/B374D848"`,
  );
}

/** 0x16_B374D848 -> "16/B374D848": uppercase, unpadded, exactly as PostgreSQL prints pg_lsn. */
export function formatLsn(lsn: Lsn): string {
  if (!Number.isSafeInteger(lsn) || lsn < 0) {
    throw new CdcError(
      'PROTOCOL_INVALID',
      `cannot format ${String(lsn)} as an LSN: it must be an integer from 0 to 2^53 - 1`,
    );
  }
  const hi = Math.floor(lsn / TWO_POW_32);
  const lo = lsn - hi * TWO_POW_32;
  return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`;
}

/** Negative when a < b, zero when equal, positive when a > b: usable as an Array.sort comparator. */
export function compareLsn(a: Lsn, b: Lsn): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
