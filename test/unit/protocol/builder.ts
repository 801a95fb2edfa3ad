/**
 * Test-only byte builders: one per pgoutput message and replication frame, written from the
 * protocol documentation independently of the decoder, so a round trip checks both against it.
 */
import {
  UNCHANGED_TOAST,
  type PgoutputMessage,
  type PgoutputTag,
  type TupleData,
} from '../../../src/protocol/messages.ts';
import type { KeepaliveFrame, XLogDataFrame } from '../../../src/protocol/replication.ts';

export type Msg<T extends PgoutputTag> = Extract<PgoutputMessage, { tag: T }>;

const TWO_POW_32 = 0x1_0000_0000;

/** Appends big-endian fields; `build()` concatenates them. */
export class Bytes {
  private readonly parts: Buffer[] = [];

  char(c: string): this {
    return this.u8(c.charCodeAt(0));
  }
  u8(v: number): this {
    this.parts.push(Buffer.from([v & 0xff]));
    return this;
  }
  i16(v: number): this {
    const b = Buffer.alloc(2);
    b.writeInt16BE(v);
    this.parts.push(b);
    return this;
  }
  i32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32BE(v);
    this.parts.push(b);
    return this;
  }
  u32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v);
    this.parts.push(b);
    return this;
  }
  /** Signed or unsigned 64-bit from a safe integer. */
  i64(v: number): this {
    const hi = Math.floor(v / TWO_POW_32);
    const b = Buffer.alloc(8);
    b.writeInt32BE(hi | 0);
    b.writeUInt32BE(v - hi * TWO_POW_32, 4);
    this.parts.push(b);
    return this;
  }
  u64(v: number): this {
    return this.i64(v);
  }
  cstring(s: string): this {
    this.parts.push(Buffer.from(s, 'utf8'), Buffer.from([0]));
    return this;
  }
  raw(b: Buffer): this {
    this.parts.push(b);
    return this;
  }
  optionalXid(xid: number | undefined): this {
    return xid === undefined ? this : this.u32(xid);
  }
  tuple(values: TupleData): this {
    this.i16(values.length);
    for (const value of values) {
      if (value === null) this.char('n');
      else if (value === UNCHANGED_TOAST) this.char('u');
      else if (typeof value === 'string') {
        const text = Buffer.from(value, 'utf8');
        this.char('t').i32(text.length).raw(text);
      } else this.char('b').i32(value.length).raw(value);
    }
    return this;
  }
  build(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export const begin = (m: Msg<'begin'>): Buffer =>
  new Bytes().char('B').u64(m.finalLsn).i64(m.commitTime).u32(m.xid).build();

export const commit = (m: Msg<'commit'>): Buffer =>
  new Bytes().char('C').u8(m.flags).u64(m.commitLsn).u64(m.endLsn).i64(m.commitTime).build();

export const origin = (m: Msg<'origin'>): Buffer => new Bytes().char('O').u64(m.originLsn).cstring(m.name).build();

export function relation(m: Msg<'relation'>): Buffer {
  const b = new Bytes().char('R').optionalXid(m.xid).u32(m.relationId).cstring(m.namespace).cstring(m.name);
  b.char(m.replicaIdentity).i16(m.columns.length);
  for (const c of m.columns)
    b.u8(c.isKey ? 1 : 0)
      .cstring(c.name)
      .u32(c.typeOid)
      .i32(c.typeMod);
  return b.build();
}

export const type = (m: Msg<'type'>): Buffer =>
  new Bytes().char('Y').optionalXid(m.xid).u32(m.typeOid).cstring(m.namespace).cstring(m.name).build();

export const insert = (m: Msg<'insert'>): Buffer =>
  new Bytes().char('I').optionalXid(m.xid).u32(m.relationId).char('N').tuple(m.newTuple).build();

export function update(m: Msg<'update'>): Buffer {
  const b = new Bytes().char('U').optionalXid(m.xid).u32(m.relationId);
  if (m.keyTuple !== undefined) b.char('K').tuple(m.keyTuple);
  if (m.oldTuple !== undefined) b.char('O').tuple(m.oldTuple);
  return b.char('N').tuple(m.newTuple).build();
}

export function del(m: Msg<'delete'>): Buffer {
  const b = new Bytes().char('D').optionalXid(m.xid).u32(m.relationId);
  if (m.keyTuple !== undefined) b.char('K').tuple(m.keyTuple);
  if (m.oldTuple !== undefined) b.char('O').tuple(m.oldTuple);
  return b.build();
}

export function truncate(m: Msg<'truncate'>): Buffer {
  const b = new Bytes().char('T').optionalXid(m.xid).i32(m.relationIds.length);
  b.u8((m.cascade ? 1 : 0) | (m.restartIdentity ? 2 : 0));
  for (const id of m.relationIds) b.u32(id);
  return b.build();
}

export const message = (m: Msg<'message'>): Buffer =>
  new Bytes()
    .char('M')
    .optionalXid(m.xid)
    .u8(m.transactional ? 1 : 0)
    .u64(m.lsn)
    .cstring(m.prefix)
    .i32(m.content.length)
    .raw(m.content)
    .build();

export const streamStart = (m: Msg<'streamStart'>): Buffer =>
  new Bytes()
    .char('S')
    .u32(m.xid)
    .u8(m.firstSegment ? 1 : 0)
    .build();

export const streamStop = (): Buffer => new Bytes().char('E').build();

export const streamCommit = (m: Msg<'streamCommit'>): Buffer =>
  new Bytes().char('c').u32(m.xid).u8(m.flags).u64(m.commitLsn).u64(m.endLsn).i64(m.commitTime).build();

export function streamAbort(m: Msg<'streamAbort'>): Buffer {
  const b = new Bytes().char('A').u32(m.xid).u32(m.subXid);
  if (m.abortLsn !== undefined) b.u64(m.abortLsn).i64(m.abortTime ?? 0);
  return b.build();
}

export const beginPrepare = (m: Msg<'beginPrepare'>): Buffer =>
  new Bytes().char('b').u64(m.prepareLsn).u64(m.endLsn).i64(m.prepareTime).u32(m.xid).cstring(m.gid).build();

export const prepare = (m: Msg<'prepare'>): Buffer =>
  new Bytes()
    .char('P')
    .u8(m.flags)
    .u64(m.prepareLsn)
    .u64(m.endLsn)
    .i64(m.prepareTime)
    .u32(m.xid)
    .cstring(m.gid)
    .build();

export const commitPrepared = (m: Msg<'commitPrepared'>): Buffer =>
  new Bytes().char('K').u8(m.flags).u64(m.commitLsn).u64(m.endLsn).i64(m.commitTime).u32(m.xid).cstring(m.gid).build();

export const rollbackPrepared = (m: Msg<'rollbackPrepared'>): Buffer =>
  new Bytes()
    .char('r')
    .u8(m.flags)
    .u64(m.prepareEndLsn)
    .u64(m.rollbackEndLsn)
    .i64(m.prepareTime)
    .i64(m.rollbackTime)
    .u32(m.xid)
    .cstring(m.gid)
    .build();

export const streamPrepare = (m: Msg<'streamPrepare'>): Buffer =>
  new Bytes()
    .char('p')
    .u8(m.flags)
    .u64(m.prepareLsn)
    .u64(m.endLsn)
    .i64(m.prepareTime)
    .u32(m.xid)
    .cstring(m.gid)
    .build();

/** The bytes of any message, through the builder for its tag. */
export function encode(m: PgoutputMessage): Buffer {
  switch (m.tag) {
    case 'begin':
      return begin(m);
    case 'commit':
      return commit(m);
    case 'origin':
      return origin(m);
    case 'relation':
      return relation(m);
    case 'type':
      return type(m);
    case 'insert':
      return insert(m);
    case 'update':
      return update(m);
    case 'delete':
      return del(m);
    case 'truncate':
      return truncate(m);
    case 'message':
      return message(m);
    case 'streamStart':
      return streamStart(m);
    case 'streamStop':
      return streamStop();
    case 'streamCommit':
      return streamCommit(m);
    case 'streamAbort':
      return streamAbort(m);
    case 'beginPrepare':
      return beginPrepare(m);
    case 'prepare':
      return prepare(m);
    case 'commitPrepared':
      return commitPrepared(m);
    case 'rollbackPrepared':
      return rollbackPrepared(m);
    case 'streamPrepare':
      return streamPrepare(m);
  }
}

export const xlogData = (f: Omit<XLogDataFrame, 'kind'>): Buffer =>
  new Bytes().char('w').u64(f.walStart).u64(f.walEnd).i64(f.sendTime).raw(f.data).build();

export const keepalive = (f: Omit<KeepaliveFrame, 'kind'>): Buffer =>
  new Bytes()
    .char('k')
    .u64(f.walEnd)
    .i64(f.sendTime)
    .u8(f.replyRequested ? 1 : 0)
    .build();
