/**
 * Looking at a pgoutput message without decoding it, allocation-free: what the spill path of streamed
 * transactions uses on the hot path (pipeline/large-transactions.ts).
 */
import { CdcError } from '../core/errors.ts';
import {
  DELETE,
  describeType,
  INSERT,
  MESSAGE,
  RELATION,
  STREAM_ABORT,
  STREAM_COMMIT,
  STREAM_START,
  STREAM_STOP,
  TRUNCATE,
  TYPE,
  UPDATE,
} from './pgoutput-codes.ts';

/** The type byte of a pgoutput message, or -1 for an empty one. Reads one byte, allocates nothing. */
export function peekMessageType(data: Buffer): number {
  return data.length === 0 ? -1 : (data[0] as number);
}

/** Stream Start, Stream Stop, Stream Commit or Stream Abort: the messages that open, close and end a streamed block. */
export function isStreamControl(type: number): boolean {
  return type === STREAM_START || type === STREAM_STOP || type === STREAM_COMMIT || type === STREAM_ABORT;
}

/**
 * The messages that carry the xid of the (sub)transaction that made them when they come inside a stream block
 * (protocol v2+): Relation, Type, Insert, Update, Delete, Truncate and transactional Message.
 */
export function carriesStreamXid(type: number): boolean {
  return (
    type === RELATION ||
    type === TYPE ||
    type === INSERT ||
    type === UPDATE ||
    type === DELETE ||
    type === TRUNCATE ||
    type === MESSAGE
  );
}

/**
 * The xid a message inside a stream block carries right after its type byte (see `carriesStreamXid`), read
 * without decoding the rest. Throws PROTOCOL_TRUNCATED when the message is too short to hold one.
 */
export function peekStreamXid(data: Buffer): number {
  if (data.length < 5) {
    const type = peekMessageType(data);
    throw new CdcError(
      'PROTOCOL_TRUNCATED',
      `pgoutput message ${type < 0 ? '(empty)' : describeType(type)} inside a stream block is ` +
        `${data.length} bytes long: too short for its xid`,
      { hint: 'The replication stream framing is broken; report it with the server version' },
    );
  }
  return data.readUInt32BE(1);
}
