/**
 * RESP2, the Redis protocol, as far as pgcdc needs it: commands encoded as arrays of bulk strings,
 * and an incremental reply reader that takes TCP chunks as they come (a reply may be split at any
 * byte, and one chunk may hold many replies).
 *
 * The reader can skip a reply without materialising it (`next(false)`): the replies to a batch's
 * XADDs are only counted, so a batch of 100,000 events costs no strings or objects on the way back.
 * Error replies are always materialised.
 */

const CR = 0x0d;
const LF = 0x0a;
const MINUS = 0x2d;
const ZERO = 0x30;

/** An error reply (`-WRONGTYPE Operation against a key...`). `prefix` is its first word. */
export class RespError extends Error {
  /** WRONGTYPE, NOPERM, NOAUTH, WRONGPASS, ERR, LOADING, ... (not `code`: that names errno/SQLSTATE). */
  readonly prefix: string;

  constructor(message: string) {
    super(message);
    this.name = 'RespError';
    const space = message.indexOf(' ');
    this.prefix = space === -1 ? message : message.slice(0, space);
  }
}

/** A reply: simple string, integer, bulk string (a Buffer: binary-safe), nil, error, array. */
export type RespValue = string | number | Buffer | null | RespError | readonly RespValue[];

/** Returned by `next` while the next reply has not arrived completely. */
export const INCOMPLETE: unique symbol = Symbol('incomplete');
/** Returned by `next(false)` for a reply that was skipped (anything but an error). */
export const SKIPPED: unique symbol = Symbol('skipped');

/** The server broke the protocol: the connection cannot be trusted any more. */
export class RespProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RespProtocolError';
  }
}

const EMPTY = Buffer.alloc(0);

export class ReplyReader {
  /** Received bytes not yet consumed start at `offset`. */
  private buffer: Buffer = EMPTY;
  private offset = 0;
  /** Chunks received since the last merge, and their total size. */
  private chunks: Buffer[] = [];
  private chunkBytes = 0;
  /** Unconsumed bytes needed before a parse can succeed (set by an incomplete parse). */
  private needed = 1;
  /** Where the value being read ends (an out-parameter of `read`, so reading allocates nothing). */
  private end = 0;

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.chunkBytes += chunk.length;
  }

  /** Unconsumed bytes. */
  get buffered(): number {
    return this.buffer.length - this.offset + this.chunkBytes;
  }

  /**
   * The next complete reply, materialised (`keep`) or skipped (an error is always materialised), or
   * INCOMPLETE until more bytes arrive. Throws RespProtocolError on bytes that are not RESP2.
   */
  next(keep: boolean): RespValue | typeof INCOMPLETE | typeof SKIPPED {
    if (this.buffered < this.needed) return INCOMPLETE;
    this.merge();
    const value = this.read(this.offset, keep);
    if (value === INCOMPLETE) return INCOMPLETE;
    this.offset = this.end;
    this.needed = 1;
    if (this.offset === this.buffer.length) {
      this.buffer = EMPTY;
      this.offset = 0;
    }
    return value;
  }

  /** Joins the chunks to the unconsumed rest: once per parse attempt that has enough bytes. */
  private merge(): void {
    if (this.chunks.length === 0) return;
    const rest = this.offset < this.buffer.length ? this.buffer.subarray(this.offset) : EMPTY;
    if (rest.length === 0 && this.chunks.length === 1) this.buffer = this.chunks[0] as Buffer;
    else this.buffer = Buffer.concat(rest.length === 0 ? this.chunks : [rest, ...this.chunks]);
    this.offset = 0;
    this.chunks = [];
    this.chunkBytes = 0;
  }

  /** Marks the parse incomplete until the unconsumed bytes reach `absoluteEnd` (or one more byte). */
  private incomplete(absoluteEnd = this.buffer.length + 1): typeof INCOMPLETE {
    this.needed = Math.max(absoluteEnd - this.offset, 1);
    return INCOMPLETE;
  }

  /** The position of the CR of the line starting at `at`, or -1. */
  private lineEnd(at: number): number {
    const cr = this.buffer.indexOf(CR, at);
    if (cr === -1 || cr + 1 >= this.buffer.length) return -1;
    if (this.buffer[cr + 1] !== LF) throw new RespProtocolError('a reply line without CRLF');
    return cr;
  }

  /** A signed decimal integer in [at, cr). */
  private integer(at: number, cr: number): number {
    const data = this.buffer;
    let i = at;
    let negative = false;
    if (data[i] === MINUS) {
      negative = true;
      i++;
    }
    if (i === cr) throw new RespProtocolError('an empty number in a reply');
    let value = 0;
    for (; i < cr; i++) {
      const digit = (data[i] as number) - ZERO;
      if (digit < 0 || digit > 9) throw new RespProtocolError('a malformed number in a reply');
      value = value * 10 + digit;
    }
    return negative ? -value : value;
  }

  private read(at: number, keep: boolean): RespValue | typeof INCOMPLETE | typeof SKIPPED {
    const data = this.buffer;
    if (at >= data.length) return this.incomplete();
    const type = data[at];
    const cr = this.lineEnd(at + 1);
    if (cr === -1) return this.incomplete();
    switch (type) {
      case 0x2b /* + */:
        this.end = cr + 2;
        return keep ? data.toString('utf8', at + 1, cr) : SKIPPED;
      case 0x2d /* - */:
        this.end = cr + 2;
        return new RespError(data.toString('utf8', at + 1, cr));
      case 0x3a /* : */:
        this.end = cr + 2;
        return keep ? this.integer(at + 1, cr) : SKIPPED;
      case 0x24 /* $ */: {
        const length = this.integer(at + 1, cr);
        if (length < 0) {
          this.end = cr + 2;
          return keep ? null : SKIPPED;
        }
        const end = cr + 2 + length + 2;
        if (end > data.length) return this.incomplete(end);
        if (data[end - 2] !== CR || data[end - 1] !== LF) throw new RespProtocolError('a bulk reply without CRLF');
        this.end = end;
        // A copy: a view would pin the whole received buffer.
        return keep ? Buffer.from(data.subarray(cr + 2, cr + 2 + length)) : SKIPPED;
      }
      case 0x2a /* * */: {
        const count = this.integer(at + 1, cr);
        if (count < 0) {
          this.end = cr + 2;
          return keep ? null : SKIPPED;
        }
        const items: RespValue[] = [];
        let next = cr + 2;
        let firstError: RespError | undefined;
        for (let i = 0; i < count; i++) {
          const item = this.read(next, keep);
          if (item === INCOMPLETE) return INCOMPLETE;
          next = this.end;
          if (item === SKIPPED) continue;
          if (item instanceof RespError) firstError ??= item;
          items.push(item);
        }
        this.end = next;
        if (keep) return items;
        return firstError ?? SKIPPED;
      }
      default:
        throw new RespProtocolError(`a reply of unknown type 0x${(type ?? 0).toString(16)}`);
    }
  }
}

/** A command as RESP: an array of bulk strings. For the occasional command, not the hot path. */
export function encodeCommand(args: readonly (string | Buffer | number)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const bytes = Buffer.isBuffer(arg) ? arg : Buffer.from(String(arg), 'utf8');
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, CRLF);
  }
  return Buffer.concat(parts);
}

const CRLF = Buffer.from('\r\n');

/** A reply as text (a bulk string decoded as UTF-8), for the few replies pgcdc reads. */
export function replyText(value: RespValue): string | undefined {
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  return undefined;
}
