/**
 * The bytes of the pgoutput format: message type bytes, tuple markers and flags
 * (https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html), shared by the
 * decoder (pgoutput.ts) and the peeks that look at a message without decoding it (pgoutput-peek.ts).
 */
// Message type bytes.
export const BEGIN = 0x42; // 'B'
export const MESSAGE = 0x4d; // 'M'
export const COMMIT = 0x43; // 'C'
export const ORIGIN = 0x4f; // 'O'
export const RELATION = 0x52; // 'R'
export const TYPE = 0x59; // 'Y'
export const INSERT = 0x49; // 'I'
export const UPDATE = 0x55; // 'U'
export const DELETE = 0x44; // 'D'
export const TRUNCATE = 0x54; // 'T'
export const STREAM_START = 0x53; // 'S'
export const STREAM_STOP = 0x45; // 'E'
export const STREAM_COMMIT = 0x63; // 'c'
export const STREAM_ABORT = 0x41; // 'A'
export const BEGIN_PREPARE = 0x62; // 'b'
export const PREPARE = 0x50; // 'P'
export const COMMIT_PREPARED = 0x4b; // 'K'
export const ROLLBACK_PREPARED = 0x72; // 'r'
export const STREAM_PREPARE = 0x70; // 'p'

// Tuple submessage bytes ('K' and 'O' share their values with COMMIT_PREPARED and ORIGIN).
export const TUPLE_NEW = 0x4e; // 'N'
export const TUPLE_KEY = 0x4b; // 'K'
export const TUPLE_OLD = 0x4f; // 'O'
export const VALUE_NULL = 0x6e; // 'n'
export const VALUE_TOAST = 0x75; // 'u'
export const VALUE_TEXT = 0x74; // 't'
export const VALUE_BINARY = 0x62; // 'b'

export const TRUNCATE_CASCADE = 1;
export const TRUNCATE_RESTART_IDENTITY = 2;

/** A type or marker byte for an error message: `'B' (0x42)`, or the hex alone when not printable. */
export function describeType(byte: number): string {
  const hex = `0x${byte.toString(16).padStart(2, '0')}`;
  return byte >= 0x20 && byte < 0x7f ? `'${String.fromCharCode(byte)}' (${hex})` : hex;
}
