/**
 * The CopyData payloads of the streaming replication protocol (CopyBoth mode after START_REPLICATION):
 * https://www.postgresql.org/docs/current/protocol-replication.html
 *
 * Server to client: 'w' XLogData (carries one pgoutput message) and 'k' primary keepalive, parsed by
 * `parseReplicationFrame`. Client to server: 'r' standby status update, built by `encodeStandbyStatus`.
 * Bytes only: no sockets, no timers; the slot layer decides when to send what.
 */
import { CdcError } from '../core/errors.ts';
import { BufferReader } from './reader.ts';
import { PG_EPOCH_OFFSET_MICROS, type Lsn } from './messages.ts';

/** A WAL payload: for logical replication, exactly one pgoutput message in `data`. */
export interface XLogDataFrame {
  readonly kind: 'xlogData';
  /**
   * WAL position of `data`. For pgoutput the walsender fills in the LSN it is decoding at, and sends
   * 0 for Relation and Type messages: never treat it as monotonic, never acknowledge it.
   */
  readonly walStart: Lsn;
  /** For logical replication the walsender sends the same value as `walStart` (not the end of WAL). */
  readonly walEnd: Lsn;
  /** Server clock at send time, µs since 2000-01-01 UTC. */
  readonly sendTime: number;
  /** The message bytes: a view of the frame (no copy), valid as long as the frame buffer is. */
  readonly data: Buffer;
}

/** The server's heartbeat. `replyRequested` means: send a status update now or be disconnected. */
export interface KeepaliveFrame {
  readonly kind: 'keepalive';
  /**
   * The server's current end of WAL; confirmable only when nothing is in flight (ARCHITECTURE.md,
   * the acknowledgement rule).
   */
  readonly walEnd: Lsn;
  readonly sendTime: number;
  readonly replyRequested: boolean;
}

/** Everything the server sends inside CopyData during logical replication. */
export type ReplicationFrame = XLogDataFrame | KeepaliveFrame;

/** What the client reports in a standby status update ('r'). */
export interface StandbyStatus {
  /** Last WAL position received and written. */
  readonly write: Lsn;
  /** Last WAL position durably processed: the slot's confirmed_flush_lsn moves to this. */
  readonly flush: Lsn;
  /** Last WAL position applied. */
  readonly apply: Lsn;
  /** Client clock, µs since 2000-01-01 UTC (see `pgClockMicros`). */
  readonly clock: number;
  /** Ask the server to answer with a keepalive at once. */
  readonly replyRequested: boolean;
}

/** Byte length of a standby status update: 'r', four Int64, one Byte1. */
export const STANDBY_STATUS_LENGTH = 34;

const XLOG_DATA = 0x77; // 'w'
const KEEPALIVE = 0x6b; // 'k'
const STANDBY_STATUS = 0x72; // 'r'
const TWO_POW_32 = 0x1_0000_0000;

// One reader for every frame: parsing is synchronous, so no two frames ever share it at once.
const reader = new BufferReader();

/**
 * Parses one CopyData payload from the server.
 * Throws PROTOCOL_TRUNCATED when the frame is shorter than its header, PROTOCOL_UNKNOWN_MESSAGE on
 * an unknown first byte. Bytes after a keepalive's fields are ignored: this protocol has no version
 * negotiation, so tolerating an appended field is the forward-compatible reading.
 */
export function parseReplicationFrame(buf: Buffer): ReplicationFrame {
  if (buf.length === 0) {
    throw new CdcError('PROTOCOL_TRUNCATED', 'empty replication CopyData frame: expected a message type byte', {
      hint: 'The replication stream framing is broken; report it with the server version',
    });
  }
  const type = buf[0] as number;
  switch (type) {
    // XLogData: Byte1('w') Int64 walStart Int64 walEnd Int64 sendTime Byte[n] data
    case XLOG_DATA: {
      reader.reset(buf, 'replication XLogData');
      reader.u8('message type');
      const walStart = reader.u64('WAL start');
      const walEnd = reader.u64('WAL end');
      const sendTime = reader.i64('send time');
      return { kind: 'xlogData', walStart, walEnd, sendTime, data: reader.rest() };
    }
    // Primary keepalive: Byte1('k') Int64 walEnd Int64 sendTime Byte1 replyRequested (1 = reply now)
    case KEEPALIVE: {
      reader.reset(buf, 'replication keepalive');
      reader.u8('message type');
      const walEnd = reader.u64('WAL end');
      const sendTime = reader.i64('send time');
      const replyRequested = reader.u8('reply-requested flag') !== 0;
      return { kind: 'keepalive', walEnd, sendTime, replyRequested };
    }
    default:
      throw new CdcError(
        'PROTOCOL_UNKNOWN_MESSAGE',
        `unknown replication message type ` +
          (`0x${type.toString(16).padStart(2, '0')} (${JSON.stringify(String.fromCharCode(type))}) in a ` +
            `${buf.length}-byte CopyData frame`),
        { hint: 'Expected XLogData (w) or keepalive (k); report this with the server version' },
      );
  }
}

/**
 * Standby status update: Byte1('r') Int64 write Int64 flush Int64 apply Int64 clock Byte1 replyRequested.
 * Throws INTERNAL when an LSN is not an integer in [0, 2^53) or the clock is not a safe integer: those
 * are bugs in the caller, and sending a wrong flush position could make the server discard WAL.
 */
export function encodeStandbyStatus(status: StandbyStatus): Buffer {
  const out = Buffer.allocUnsafe(STANDBY_STATUS_LENGTH);
  out[0] = STANDBY_STATUS;
  writeUint64(out, 1, status.write, 'write LSN');
  writeUint64(out, 9, status.flush, 'flush LSN');
  writeUint64(out, 17, status.apply, 'apply LSN');
  if (!Number.isSafeInteger(status.clock)) {
    throw new CdcError(
      'INTERNAL',
      `standby status clock ${String(status.clock)} is not a safe integer of microseconds`,
    );
  }
  const hi = Math.floor(status.clock / TWO_POW_32);
  out.writeInt32BE(hi, 25);
  out.writeUInt32BE(status.clock - hi * TWO_POW_32, 29);
  out[33] = status.replyRequested ? 1 : 0;
  return out;
}

/** The PostgreSQL clock for status updates: µs since 2000-01-01 UTC, from Unix milliseconds. */
export function pgClockMicros(unixMs: number = Date.now()): number {
  return Math.round(unixMs * 1000) - PG_EPOCH_OFFSET_MICROS;
}

function writeUint64(out: Buffer, at: number, value: Lsn, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new CdcError('INTERNAL', `standby status ${what} ${String(value)} is not an integer from 0 to 2^53 - 1`);
  }
  const hi = Math.floor(value / TWO_POW_32);
  out.writeUInt32BE(hi, at);
  out.writeUInt32BE(value - hi * TWO_POW_32, at + 4);
}

/**
 * True when `frame` is a primary keepalive that asks for a reply now. Reads two bytes and allocates nothing, so a
 * frame can be looked at on arrival, before it is parsed in order (the stream loop answers such a keepalive before
 * it processes the next frame, even while frames wait behind a catalog lookup).
 */
export function isReplyRequest(frame: Buffer): boolean {
  // Keepalive: Byte1('k') Int64 walEnd Int64 sendTime Byte1 replyRequested
  return frame.length >= 18 && frame[0] === KEEPALIVE && frame[17] !== 0;
}
