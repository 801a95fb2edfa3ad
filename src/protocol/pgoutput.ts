/**
 * Decoder for the pgoutput logical replication messages, protocol versions 1 to 4:
 * https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html
 *
 * Contract:
 * - `decode(buf)` takes exactly one message (one XLogData payload, or one row of
 *   pg_logical_slot_get_binary_changes) and returns it as a `PgoutputMessage`, or throws a CdcError:
 *   PROTOCOL_TRUNCATED when the bytes end early, PROTOCOL_UNKNOWN_MESSAGE for a type byte the
 *   negotiated protocol version does not define, PROTOCOL_INVALID for anything else malformed
 *   (trailing bytes, a bad enum byte, a negative length, a 64-bit value beyond 2^53, a stream block
 *   out of order). No other exception escapes.
 * - The decoder is stateful in one way only: between Stream Start and Stream Stop (protocol v2+) the
 *   data messages carry a leading xid, so it tracks whether it is inside such a block. A message that
 *   fails to decode leaves that state unchanged. Call `reset()` when a new replication session starts.
 * - Decoded messages never alias `buf`: binary tuple values and logical message contents are copied,
 *   so the caller may reuse the input buffer as soon as `decode` returns.
 * - Tuple text is decoded as UTF-8, the client_encoding of the connection that reads the slot.
 * - Relation and Type namespaces are '' for pg_catalog, as the server sends them.
 *
 * This file reads each message's frame and keeps the stream block state; TupleData and a Relation's columns are
 * read in pgoutput-rows.ts, the bodies of the streaming and two-phase control messages in pgoutput-control.ts.
 */
import { CdcError } from '../core/errors.ts';
import { BufferReader } from './reader.ts';
import {
  BEGIN,
  BEGIN_PREPARE,
  COMMIT,
  COMMIT_PREPARED,
  DELETE,
  describeType,
  INSERT,
  MESSAGE,
  ORIGIN,
  PREPARE,
  RELATION,
  ROLLBACK_PREPARED,
  STREAM_ABORT,
  STREAM_COMMIT,
  STREAM_PREPARE,
  STREAM_START,
  STREAM_STOP,
  TRUNCATE,
  TRUNCATE_CASCADE,
  TRUNCATE_RESTART_IDENTITY,
  TUPLE_KEY,
  TUPLE_NEW,
  TUPLE_OLD,
  TYPE,
  UPDATE,
} from './pgoutput-codes.ts';
import type { PgoutputMessage, TupleData } from './messages.ts';
import { readRelationColumns, readReplicaIdentity, readTuple } from './pgoutput-rows.ts';
import {
  readBeginPrepare,
  readCommitPrepared,
  readPrepare,
  readRollbackPrepared,
  readStreamAbort,
  readStreamCommit,
} from './pgoutput-control.ts';

export type PgoutputProtoVersion = 1 | 2 | 3 | 4;

export interface PgoutputDecoderOptions {
  /** The proto_version given to START_REPLICATION: it decides which messages and fields exist. */
  readonly protoVersion: PgoutputProtoVersion;
  /**
   * Start inside a stream block (protocol v2+): for messages that were received between a Stream Start and its
   * Stream Stop and are decoded later, each still carrying its xid (a streamed transaction's spill file).
   */
  readonly inStreamBlock?: boolean;
}

export class PgoutputDecoder {
  readonly protoVersion: PgoutputProtoVersion;
  // One reader reset per message: no allocation besides the decoded message itself.
  private readonly r = new BufferReader();
  private streaming = false;

  constructor(options: PgoutputDecoderOptions) {
    const version: number = options.protoVersion;
    if (version !== 1 && version !== 2 && version !== 3 && version !== 4) {
      throw new CdcError('INTERNAL', `pgoutput protocol version ${String(version)} is not supported (1 to 4)`);
    }
    this.protoVersion = options.protoVersion;
    if (options.inStreamBlock === true) {
      if (version < 2) throw new CdcError('INTERNAL', `pgoutput protocol version ${version} has no stream blocks`);
      this.streaming = true;
    }
  }

  /** True between a Stream Start and its Stream Stop, where data messages carry an xid. */
  get inStreamBlock(): boolean {
    return this.streaming;
  }

  /** Forgets the stream block state: a new replication session always starts outside one. */
  reset(): void {
    this.streaming = false;
  }

  /** Decodes one message. See the module doc for the error contract. */
  decode(buf: Buffer): PgoutputMessage {
    const r = this.r;
    if (buf.length === 0) {
      throw new CdcError('PROTOCOL_TRUNCATED', 'empty pgoutput message: expected a message type byte');
    }
    const type = buf[0] as number;
    // Each case points the shared reader just past the type byte it switched on.
    switch (type) {
      // Insert: Byte1('I') [Int32 xid] Int32 relationOid Byte1('N') TupleData
      case INSERT: {
        r.reset(buf, 'pgoutput Insert', 1);
        const xid = this.streaming ? r.u32('xid') : undefined;
        const relationId = r.u32('relation oid');
        if (r.u8('new tuple marker') !== TUPLE_NEW) throw r.invalid(`expected new tuple marker 'N'`);
        const newTuple = readTuple(r, 'new tuple');
        r.expectEnd();
        return { tag: 'insert', xid, relationId, newTuple };
      }
      // Update: Byte1('U') [Int32 xid] Int32 relationOid [Byte1('K'|'O') TupleData] Byte1('N') TupleData
      case UPDATE: {
        r.reset(buf, 'pgoutput Update', 1);
        const xid = this.streaming ? r.u32('xid') : undefined;
        const relationId = r.u32('relation oid');
        let keyTuple: TupleData | undefined;
        let oldTuple: TupleData | undefined;
        const marker = r.u8('tuple marker');
        if (marker === TUPLE_KEY || marker === TUPLE_OLD) {
          const before = readTuple(r, marker === TUPLE_KEY ? 'key tuple' : 'old tuple');
          if (marker === TUPLE_KEY) keyTuple = before;
          else oldTuple = before;
          const next = r.u8('new tuple marker');
          if (next !== TUPLE_NEW)
            throw r.invalid(`expected new tuple marker 'N' after the old row, got ${describeType(next)}`);
        } else if (marker !== TUPLE_NEW) {
          throw r.invalid(`expected tuple marker 'K', 'O' or 'N', got ${describeType(marker)}`);
        }
        const newTuple = readTuple(r, 'new tuple');
        r.expectEnd();
        return { tag: 'update', xid, relationId, keyTuple, oldTuple, newTuple };
      }
      // Delete: Byte1('D') [Int32 xid] Int32 relationOid Byte1('K'|'O') TupleData
      case DELETE: {
        r.reset(buf, 'pgoutput Delete', 1);
        const xid = this.streaming ? r.u32('xid') : undefined;
        const relationId = r.u32('relation oid');
        const marker = r.u8('tuple marker');
        if (marker !== TUPLE_KEY && marker !== TUPLE_OLD)
          throw r.invalid(`expected tuple marker 'K' or 'O', got ${describeType(marker)}`);
        const tuple = readTuple(r, marker === TUPLE_KEY ? 'key tuple' : 'old tuple');
        r.expectEnd();
        return marker === TUPLE_KEY
          ? { tag: 'delete', xid, relationId, keyTuple: tuple, oldTuple: undefined }
          : { tag: 'delete', xid, relationId, keyTuple: undefined, oldTuple: tuple };
      }
      // Begin: Byte1('B') Int64 finalLsn Int64 commitTime Int32 xid
      case BEGIN: {
        r.reset(buf, 'pgoutput Begin', 1);
        this.outsideStream('Begin');
        const finalLsn = r.u64('final LSN');
        const commitTime = r.i64('commit time');
        const xid = r.u32('xid');
        r.expectEnd();
        return { tag: 'begin', finalLsn, commitTime, xid };
      }
      // Commit: Byte1('C') Int8 flags Int64 commitLsn Int64 endLsn Int64 commitTime
      case COMMIT: {
        r.reset(buf, 'pgoutput Commit', 1);
        this.outsideStream('Commit');
        const flags = r.u8('flags');
        const commitLsn = r.u64('commit LSN');
        const endLsn = r.u64('end LSN');
        const commitTime = r.i64('commit time');
        r.expectEnd();
        return { tag: 'commit', flags, commitLsn, endLsn, commitTime };
      }
      // Origin: Byte1('O') Int64 originCommitLsn String name
      case ORIGIN: {
        r.reset(buf, 'pgoutput Origin', 1);
        const originLsn = r.u64('origin LSN');
        const name = r.cstring('origin name');
        r.expectEnd();
        return { tag: 'origin', originLsn, name };
      }
      // Relation: Byte1('R') [Int32 xid] Int32 relationOid String namespace String name
      //           Int8 replicaIdentity Int16 ncols { Int8 flags String name Int32 typeOid Int32 typmod }*ncols
      case RELATION: {
        r.reset(buf, 'pgoutput Relation', 1);
        const xid = this.streaming ? r.u32('xid') : undefined;
        const relationId = r.u32('relation oid');
        const namespace = r.cstring('namespace');
        const name = r.cstring('relation name');
        const replicaIdentity = readReplicaIdentity(r);
        const columns = readRelationColumns(r);
        r.expectEnd();
        return { tag: 'relation', xid, relationId, namespace, name, replicaIdentity, columns };
      }
      // Type: Byte1('Y') [Int32 xid] Int32 typeOid String namespace String name
      case TYPE: {
        r.reset(buf, 'pgoutput Type', 1);
        const xid = this.streaming ? r.u32('xid') : undefined;
        const typeOid = r.u32('type oid');
        const namespace = r.cstring('namespace');
        const name = r.cstring('type name');
        r.expectEnd();
        return { tag: 'type', xid, typeOid, namespace, name };
      }
      // Truncate: Byte1('T') [Int32 xid] Int32 nrels Int8 options(1 cascade, 2 restart identity) Int32
      // relationOid*nrels
      case TRUNCATE: {
        r.reset(buf, 'pgoutput Truncate', 1);
        const xid = this.streaming ? r.u32('xid') : undefined;
        const count = r.i32('relation count');
        if (count < 0) throw r.invalid(`negative relation count ${count}`);
        const options = r.u8('options');
        r.ensure(count * 4, 'relation oids'); // before the loop, so a corrupt count fails at once
        const relationIds: number[] = [];
        for (let i = 0; i < count; i++) relationIds.push(r.u32('relation oid'));
        r.expectEnd();
        const cascade = (options & TRUNCATE_CASCADE) !== 0;
        return {
          tag: 'truncate',
          xid,
          cascade,
          restartIdentity: (options & TRUNCATE_RESTART_IDENTITY) !== 0,
          relationIds,
        };
      }
      // Message: Byte1('M') [Int32 xid] Int8 flags(1 transactional) Int64 lsn String prefix Int32 length Byte[length]
      case MESSAGE: {
        r.reset(buf, 'pgoutput Message', 1);
        const xid = this.streaming ? r.u32('xid') : undefined;
        const transactional = (r.u8('flags') & 1) !== 0;
        const lsn = r.u64('LSN');
        const prefix = r.cstring('prefix');
        const content = r.copyBytes(r.i32('content length'), 'content');
        r.expectEnd();
        return { tag: 'message', xid, transactional, lsn, prefix, content };
      }
      // Stream Start: Byte1('S') Int32 xid Int8 firstSegment(1 = first)
      case STREAM_START: {
        r.reset(buf, 'pgoutput Stream Start', 1);
        this.needsVersion(2, 'Stream Start', type);
        if (this.streaming) throw r.invalid('Stream Start inside a stream block (no Stream Stop since the last one)');
        const xid = r.u32('xid');
        const firstSegment = r.u8('first-segment flag') === 1;
        r.expectEnd();
        this.streaming = true;
        return { tag: 'streamStart', xid, firstSegment };
      }
      // Stream Stop: Byte1('E')
      case STREAM_STOP: {
        r.reset(buf, 'pgoutput Stream Stop', 1);
        this.needsVersion(2, 'Stream Stop', type);
        if (!this.streaming) throw r.invalid('Stream Stop outside a stream block');
        r.expectEnd();
        this.streaming = false;
        return { tag: 'streamStop' };
      }
      // The control messages of streaming and two-phase: their fields are read in pgoutput-control.ts.
      case STREAM_COMMIT:
        this.control(buf, 'Stream Commit', 2, type);
        return readStreamCommit(r);
      case STREAM_ABORT:
        this.control(buf, 'Stream Abort', 2, type);
        return readStreamAbort(r, this.protoVersion >= 4);
      case BEGIN_PREPARE:
        this.control(buf, 'Begin Prepare', 3, type);
        return readBeginPrepare(r);
      case PREPARE:
        this.control(buf, 'Prepare', 3, type);
        return readPrepare(r, false);
      case STREAM_PREPARE:
        this.control(buf, 'Stream Prepare', 3, type);
        return readPrepare(r, true);
      case COMMIT_PREPARED:
        this.control(buf, 'Commit Prepared', 3, type);
        return readCommitPrepared(r);
      case ROLLBACK_PREPARED:
        this.control(buf, 'Rollback Prepared', 3, type);
        return readRollbackPrepared(r);
      default:
        throw new CdcError(
          'PROTOCOL_UNKNOWN_MESSAGE',
          `unknown pgoutput message type ${describeType(type)} (${buf.length} bytes)`,
          {
            hint: 'The server sent a message this version of pgcdc does not know; report it with the server version',
          },
        );
    }
  }

  /**
   * Points the reader past the type byte of a control message that needs `version` and may not come inside a stream
   * block. */
  private control(buf: Buffer, name: string, version: PgoutputProtoVersion, type: number): void {
    this.r.reset(buf, `pgoutput ${name}`, 1);
    this.needsVersion(version, name, type);
    this.outsideStream(name);
  }

  private needsVersion(min: PgoutputProtoVersion, name: string, type: number): void {
    if (this.protoVersion >= min) return;
    throw new CdcError(
      'PROTOCOL_UNKNOWN_MESSAGE',
      `pgoutput ${name} message ` +
        `(${describeType(type)}) does not exist in protocol version ${this.protoVersion}; it needs version ${min}`,
      { hint: 'The server and pgcdc disagree on proto_version; report it with the server version' },
    );
  }

  // Transaction boundaries never occur inside a stream block; one there means a Stream Stop was lost,
  // and every xid-prefixed message since would have been misread.
  private outsideStream(name: string): void {
    if (this.streaming) throw this.r.invalid(`${name} inside a stream block (Stream Stop missing)`);
  }
}

export { carriesStreamXid, isStreamControl, peekMessageType, peekStreamXid } from './pgoutput-peek.ts';
