/**
 * A bounds-checked big-endian reader over one wire message.
 *
 * Contract:
 * - Every read checks the bytes it needs first and throws `CdcError('PROTOCOL_TRUNCATED')` naming
 *   the field it was reading (and the `context`, e.g. the message being decoded); no read ever lets
 *   a RangeError escape or reads past the end of the message.
 * - 64-bit integers come back as JavaScript numbers. They are exact below 2^53 (8 PiB of WAL, or
 *   the year 2255 for timestamps); a value at or above that throws `PROTOCOL_INVALID` rather than
 *   being silently rounded.
 * - `cstring` and `utf8` decode UTF-8 (the replication connection's client_encoding).
 * - `bytes` returns a view of the underlying buffer (no copy); `copyBytes` returns a copy.
 *
 * It is meant to be allocated once and `reset` for every message: the decoder is on the hot path
 * (hundreds of thousands of messages per second), so reads allocate nothing but their results.
 */
import { CdcError } from '../core/errors.ts';

const TWO_POW_32 = 0x1_0000_0000;
/** 2^21: a high half at or above this puts a 64-bit value at or past 2^53. */
const MAX_SAFE_HIGH = 0x20_0000;

const EMPTY = Buffer.alloc(0);

/**
 * Buffer's own UTF-8 decoder, without the argument handling `toString('utf8', start, end)` wraps it
 * in (about a fifth of Insert decoding time). Not in the typings, but present in every Node.js
 * release; `toString` remains the fallback should it ever go away.
 */
type Utf8Slice = (this: Buffer, start: number, end: number) => string;
const nativeUtf8Slice = (Buffer.prototype as unknown as { utf8Slice?: Utf8Slice }).utf8Slice;
const utf8Slice: Utf8Slice =
  typeof nativeUtf8Slice === 'function'
    ? nativeUtf8Slice
    : function (this: Buffer, start: number, end: number): string {
        return this.toString('utf8', start, end);
      };

const TRUNCATED_HINT =
  'The replication stream ended inside a message; this is a bug in framing or a corrupt stream, report it with ' +
  'the server version';
const INVALID_HINT =
  'The server sent bytes pgcdc does not understand; report it with the server version and the negotiated ' +
  'protocol version';

export class BufferReader {
  private buf: Buffer = EMPTY;
  private pos = 0;
  /** Named in error messages, e.g. "pgoutput Insert": what the bytes were supposed to be. */
  context = '';

  /** Points the reader at `offset` (default 0) in `buf`; the caller has checked that `offset` is in range. */
  reset(buf: Buffer, context: string, offset = 0): void {
    this.buf = buf;
    this.pos = offset;
    this.context = context;
  }

  /** Offset of the next unread byte. */
  get offset(): number {
    return this.pos;
  }

  /** Bytes left to read. */
  get remaining(): number {
    return this.buf.length - this.pos;
  }

  u8(what: string): number {
    const at = this.pos;
    if (at >= this.buf.length) this.truncated(what, 1);
    this.pos = at + 1;
    // Index access on a Buffer is the fastest single-byte read; the bound was checked above.
    return this.buf[at] as number;
  }

  i16(what: string): number {
    const at = this.pos;
    if (at + 2 > this.buf.length) this.truncated(what, 2);
    this.pos = at + 2;
    return this.buf.readInt16BE(at);
  }

  i32(what: string): number {
    const at = this.pos;
    if (at + 4 > this.buf.length) this.truncated(what, 4);
    this.pos = at + 4;
    return this.buf.readInt32BE(at);
  }

  u32(what: string): number {
    const at = this.pos;
    if (at + 4 > this.buf.length) this.truncated(what, 4);
    this.pos = at + 4;
    return this.buf.readUInt32BE(at);
  }

  /** Unsigned 64-bit (LSNs). Throws PROTOCOL_INVALID at or above 2^53. */
  u64(what: string): number {
    const at = this.pos;
    if (at + 8 > this.buf.length) this.truncated(what, 8);
    const hi = this.buf.readUInt32BE(at);
    const lo = this.buf.readUInt32BE(at + 4);
    if (hi >= MAX_SAFE_HIGH) this.tooLarge(what, at);
    this.pos = at + 8;
    return hi * TWO_POW_32 + lo;
  }

  /** Signed 64-bit (timestamps). Throws PROTOCOL_INVALID outside ±(2^53 - 1). */
  i64(what: string): number {
    const at = this.pos;
    if (at + 8 > this.buf.length) this.truncated(what, 8);
    const hi = this.buf.readInt32BE(at);
    const lo = this.buf.readUInt32BE(at + 4);
    // hi in [-2^21, 2^21) keeps hi * 2^32 + lo within the safe range (the lowest value excepted).
    if (hi >= MAX_SAFE_HIGH || hi < -MAX_SAFE_HIGH || (hi === -MAX_SAFE_HIGH && lo === 0)) this.tooLarge(what, at);
    this.pos = at + 8;
    return hi * TWO_POW_32 + lo;
  }

  /** Throws PROTOCOL_TRUNCATED unless at least `length` bytes remain; reads nothing. */
  ensure(length: number, what: string): void {
    if (this.pos + length > this.buf.length) this.truncated(what, length);
  }

  /** A NUL-terminated UTF-8 string; the terminator is consumed, not returned. */
  cstring(what: string): string {
    const buf = this.buf;
    const at = this.pos;
    // indexOf(number) is a native memchr: much faster than a byte loop for names.
    const nul = at < buf.length ? buf.indexOf(0, at) : -1;
    if (nul < 0) {
      throw new CdcError(
        'PROTOCOL_TRUNCATED',
        `${this.context} message truncated reading ` +
          `${what}: no NUL terminator after offset ${at} (message is ${buf.length} bytes)`,
        { hint: TRUNCATED_HINT },
      );
    }
    this.pos = nul + 1;
    return nul === at ? '' : utf8Slice.call(buf, at, nul);
  }

  /** `length` bytes decoded as UTF-8. */
  utf8(length: number, what: string): string {
    const at = this.pos;
    if (length < 0) this.negativeLength(what, length, at);
    if (at + length > this.buf.length) this.truncated(what, length);
    this.pos = at + length;
    return length === 0 ? '' : utf8Slice.call(this.buf, at, at + length);
  }

  /** A view of the next `length` bytes, sharing memory with the input (valid while it is). */
  bytes(length: number, what: string): Buffer {
    const at = this.pos;
    if (length < 0) this.negativeLength(what, length, at);
    if (at + length > this.buf.length) this.truncated(what, length);
    this.pos = at + length;
    return this.buf.subarray(at, at + length);
  }

  /** A copy of the next `length` bytes: safe to keep after the input buffer is reused. */
  copyBytes(length: number, what: string): Buffer {
    return Buffer.from(this.bytes(length, what));
  }

  /** Everything not yet read, as a view (no copy). */
  rest(): Buffer {
    const view = this.buf.subarray(this.pos);
    this.pos = this.buf.length;
    return view;
  }

  /** Throws PROTOCOL_INVALID when bytes remain: the message is longer than its grammar allows. */
  expectEnd(): void {
    if (this.pos !== this.buf.length) {
      throw new CdcError(
        'PROTOCOL_INVALID',
        `${this.context} message has ` +
          `${this.buf.length - this.pos} unexpected trailing byte(s) after offset ${this.pos}`,
        { hint: INVALID_HINT },
      );
    }
  }

  /** A PROTOCOL_INVALID error located at the current offset, for callers' own checks. */
  invalid(detail: string): CdcError {
    return new CdcError('PROTOCOL_INVALID', `${this.context} message invalid at offset ${this.pos}: ${detail}`, {
      hint: INVALID_HINT,
    });
  }

  private truncated(what: string, needed: number): never {
    throw new CdcError(
      'PROTOCOL_TRUNCATED',
      `${this.context} message truncated reading ` +
        `${what}: needs ${needed} byte(s) at offset ${this.pos}, ${this.buf.length - this.pos} left`,
      { hint: TRUNCATED_HINT },
    );
  }

  private tooLarge(what: string, at: number): never {
    throw new CdcError(
      'PROTOCOL_INVALID',
      `${this.context} message: ` +
        `${what} at offset ${at} does not fit in 53 bits (bytes ${this.buf.toString('hex', at, at + 8)})`,
      { hint: INVALID_HINT },
    );
  }

  private negativeLength(what: string, length: number, at: number): never {
    throw new CdcError(
      'PROTOCOL_INVALID',
      `${this.context} message: negative length ${length} for ${what} before offset ${at}`,
      {
        hint: INVALID_HINT,
      },
    );
  }
}
