/**
 * The bodies of pgoutput's streaming and two-phase control messages (protocol v2 and v3): Stream Commit,
 * Stream Abort, Begin Prepare, Prepare, Stream Prepare, Commit Prepared and Rollback Prepared.
 *
 * Separate from the message decoder (pgoutput.ts), which checks the protocol version and the stream block
 * state and points its reader just past the type byte: each function here reads the rest of one message,
 * ends it (trailing bytes are an error) and keeps no state. None of these is on the per-change hot path.
 */
import type { BufferReader } from './reader.ts';
import type { PgoutputMessage } from './messages.ts';

type Message<Tag extends PgoutputMessage['tag']> = Extract<PgoutputMessage, { tag: Tag }>;

/** Stream Commit: Byte1('c') Int32 xid Int8 flags Int64 commitLsn Int64 endLsn Int64 commitTime */
export function readStreamCommit(r: BufferReader): Message<'streamCommit'> {
  const xid = r.u32('xid');
  const flags = r.u8('flags');
  const commitLsn = r.u64('commit LSN');
  const endLsn = r.u64('end LSN');
  const commitTime = r.i64('commit time');
  r.expectEnd();
  return { tag: 'streamCommit', xid, flags, commitLsn, endLsn, commitTime };
}

/**
 * Stream Abort: Byte1('A') Int32 xid Int32 subXid [Int64 abortLsn Int64 abortTime]
 * The bracketed fields exist from protocol v4 (`withAbortLsn`), and only with streaming = parallel: present iff
 * bytes remain.
 */
export function readStreamAbort(r: BufferReader, withAbortLsn: boolean): Message<'streamAbort'> {
  const xid = r.u32('xid');
  const subXid = r.u32('subtransaction xid');
  let abortLsn: number | undefined;
  let abortTime: number | undefined;
  if (withAbortLsn && r.remaining > 0) {
    abortLsn = r.u64('abort LSN');
    abortTime = r.i64('abort time');
  }
  r.expectEnd();
  return { tag: 'streamAbort', xid, subXid, abortLsn, abortTime };
}

/** Begin Prepare: Byte1('b') Int64 prepareLsn Int64 endLsn Int64 prepareTime Int32 xid String gid */
export function readBeginPrepare(r: BufferReader): Message<'beginPrepare'> {
  const prepareLsn = r.u64('prepare LSN');
  const endLsn = r.u64('end LSN');
  const prepareTime = r.i64('prepare time');
  const xid = r.u32('xid');
  const gid = r.cstring('gid');
  r.expectEnd();
  return { tag: 'beginPrepare', prepareLsn, endLsn, prepareTime, xid, gid };
}

/**
 * Prepare:        Byte1('P') Int8 flags Int64 prepareLsn Int64 endLsn Int64 prepareTime Int32 xid String gid
 * Stream Prepare: Byte1('p') with the same fields (`streamed`)
 */
export function readPrepare(r: BufferReader, streamed: boolean): Message<'prepare' | 'streamPrepare'> {
  const flags = r.u8('flags');
  const prepareLsn = r.u64('prepare LSN');
  const endLsn = r.u64('end LSN');
  const prepareTime = r.i64('prepare time');
  const xid = r.u32('xid');
  const gid = r.cstring('gid');
  r.expectEnd();
  return streamed
    ? { tag: 'streamPrepare', flags, prepareLsn, endLsn, prepareTime, xid, gid }
    : { tag: 'prepare', flags, prepareLsn, endLsn, prepareTime, xid, gid };
}

/** Commit Prepared: Byte1('K') Int8 flags Int64 commitLsn Int64 endLsn Int64 commitTime Int32 xid String gid */
export function readCommitPrepared(r: BufferReader): Message<'commitPrepared'> {
  const flags = r.u8('flags');
  const commitLsn = r.u64('commit LSN');
  const endLsn = r.u64('end LSN');
  const commitTime = r.i64('commit time');
  const xid = r.u32('xid');
  const gid = r.cstring('gid');
  r.expectEnd();
  return { tag: 'commitPrepared', flags, commitLsn, endLsn, commitTime, xid, gid };
}

/**
 * Rollback Prepared: Byte1('r') Int8 flags Int64 prepareEndLsn Int64 rollbackEndLsn
 *                    Int64 prepareTime Int64 rollbackTime Int32 xid String gid
 */
export function readRollbackPrepared(r: BufferReader): Message<'rollbackPrepared'> {
  const flags = r.u8('flags');
  const prepareEndLsn = r.u64('prepare end LSN');
  const rollbackEndLsn = r.u64('rollback end LSN');
  const prepareTime = r.i64('prepare time');
  const rollbackTime = r.i64('rollback time');
  const xid = r.u32('xid');
  const gid = r.cstring('gid');
  r.expectEnd();
  return { tag: 'rollbackPrepared', flags, prepareEndLsn, rollbackEndLsn, prepareTime, rollbackTime, xid, gid };
}
