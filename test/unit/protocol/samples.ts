/**
 * One or more sample messages per pgoutput message type, with the decoder state each needs:
 * the protocol version and whether it sits inside a Stream Start..Stream Stop block.
 */
import { UNCHANGED_TOAST, type PgoutputMessage } from '../../../src/protocol/messages.ts';
import { PgoutputDecoder, type PgoutputProtoVersion } from '../../../src/protocol/pgoutput.ts';
import { encode, streamStart } from './builder.ts';

export interface Sample {
  readonly name: string;
  readonly message: PgoutputMessage;
  readonly protoVersion: PgoutputProtoVersion;
  readonly inStream: boolean;
  /** Strict prefixes that are themselves complete messages (the optional v4 Stream Abort fields). */
  readonly validPrefixLengths?: readonly number[];
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const T = 817_000_000_000_000; // a 2025 timestamp, µs since 2000

export const SAMPLES: readonly Sample[] = [
  {
    name: 'Begin',
    protoVersion: 1,
    inStream: false,
    message: { tag: 'begin', finalLsn: 0x16_b374d848, commitTime: T, xid: 4_294_967_295 },
  },
  {
    name: 'Begin at the 2^53 edge, negative time',
    protoVersion: 1,
    inStream: false,
    message: { tag: 'begin', finalLsn: MAX_SAFE, commitTime: -1, xid: 0 },
  },
  {
    name: 'Commit',
    protoVersion: 1,
    inStream: false,
    message: { tag: 'commit', flags: 0, commitLsn: 0x1a2b3c8, endLsn: 0x1a2b3f8, commitTime: T },
  },
  {
    name: 'Origin',
    protoVersion: 1,
    inStream: false,
    message: { tag: 'origin', originLsn: 0x1_0abcdef0, name: 'upstream' },
  },
  {
    name: 'Origin in a stream block',
    protoVersion: 2,
    inStream: true,
    message: { tag: 'origin', originLsn: 1, name: '' },
  },
  {
    name: 'Relation',
    protoVersion: 1,
    inStream: false,
    message: {
      tag: 'relation',
      xid: undefined,
      relationId: 16396,
      namespace: 'public',
      name: 'orders',
      replicaIdentity: 'd',
      columns: [
        { isKey: true, name: 'id', typeOid: 23, typeMod: -1 },
        { isKey: false, name: 'total', typeOid: 1700, typeMod: 655366 },
        { isKey: false, name: 'prénom', typeOid: 4_294_967_295, typeMod: 2_147_483_647 },
      ],
    },
  },
  {
    name: 'Relation in a stream block, no columns, pg_catalog namespace',
    protoVersion: 2,
    inStream: true,
    message: {
      tag: 'relation',
      xid: 808,
      relationId: 1,
      namespace: '',
      name: 'empty',
      replicaIdentity: 'n',
      columns: [],
    },
  },
  {
    name: 'Relation with REPLICA IDENTITY FULL',
    protoVersion: 1,
    inStream: false,
    message: {
      tag: 'relation',
      xid: undefined,
      relationId: 7,
      namespace: 's',
      name: 't',
      replicaIdentity: 'f',
      columns: [{ isKey: true, name: 'a', typeOid: 25, typeMod: -1 }],
    },
  },
  {
    name: 'Relation with REPLICA IDENTITY INDEX',
    protoVersion: 1,
    inStream: false,
    message: {
      tag: 'relation',
      xid: undefined,
      relationId: 8,
      namespace: 's',
      name: 'u',
      replicaIdentity: 'i',
      columns: [],
    },
  },
  {
    name: 'Type',
    protoVersion: 1,
    inStream: false,
    message: { tag: 'type', xid: undefined, typeOid: 16386, namespace: 'public', name: 'mood' },
  },
  {
    name: 'Type in a stream block',
    protoVersion: 2,
    inStream: true,
    message: { tag: 'type', xid: 9, typeOid: 16394, namespace: '', name: 'int4' },
  },
  {
    name: 'Insert with every value kind',
    protoVersion: 1,
    inStream: false,
    message: {
      tag: 'insert',
      xid: undefined,
      relationId: 16396,
      newTuple: ['42', null, UNCHANGED_TOAST, Buffer.from([0xde, 0xad, 0xbe, 0xef]), '', 'Zoë ☃ 🐘', Buffer.alloc(0)],
    },
  },
  {
    name: 'Insert with no columns',
    protoVersion: 1,
    inStream: false,
    message: { tag: 'insert', xid: undefined, relationId: 1, newTuple: [] },
  },
  {
    name: 'Insert in a stream block',
    protoVersion: 4,
    inStream: true,
    message: { tag: 'insert', xid: 806, relationId: 16515, newTuple: ['1', 'row 1'] },
  },
  {
    name: 'Update, new row only',
    protoVersion: 1,
    inStream: false,
    message: {
      tag: 'update',
      xid: undefined,
      relationId: 5,
      keyTuple: undefined,
      oldTuple: undefined,
      newTuple: ['1', '21.50'],
    },
  },
  {
    name: 'Update with a key tuple (K)',
    protoVersion: 1,
    inStream: false,
    message: {
      tag: 'update',
      xid: undefined,
      relationId: 5,
      keyTuple: ['2', null],
      oldTuple: undefined,
      newTuple: ['20', 'x'],
    },
  },
  {
    name: 'Update with an old tuple (O)',
    protoVersion: 1,
    inStream: false,
    message: {
      tag: 'update',
      xid: undefined,
      relationId: 5,
      keyTuple: undefined,
      oldTuple: ['1', 'first'],
      newTuple: ['1', UNCHANGED_TOAST],
    },
  },
  {
    name: 'Update in a stream block',
    protoVersion: 2,
    inStream: true,
    message: { tag: 'update', xid: 3, relationId: 5, keyTuple: ['1'], oldTuple: undefined, newTuple: ['2'] },
  },
  {
    name: 'Delete with a key tuple',
    protoVersion: 1,
    inStream: false,
    message: { tag: 'delete', xid: undefined, relationId: 5, keyTuple: ['20', null], oldTuple: undefined },
  },
  {
    name: 'Delete with an old tuple',
    protoVersion: 1,
    inStream: false,
    message: { tag: 'delete', xid: undefined, relationId: 5, keyTuple: undefined, oldTuple: ['1', 'second'] },
  },
  {
    name: 'Delete in a stream block',
    protoVersion: 3,
    inStream: true,
    message: { tag: 'delete', xid: 77, relationId: 5, keyTuple: ['2'], oldTuple: undefined },
  },
  {
    name: 'Truncate with cascade and restart identity',
    protoVersion: 1,
    inStream: false,
    message: { tag: 'truncate', xid: undefined, cascade: true, restartIdentity: true, relationIds: [16406, 16415] },
  },
  {
    name: 'Truncate, plain',
    protoVersion: 1,
    inStream: false,
    message: { tag: 'truncate', xid: undefined, cascade: false, restartIdentity: false, relationIds: [1] },
  },
  {
    name: 'Truncate, restart identity only',
    protoVersion: 1,
    inStream: false,
    message: { tag: 'truncate', xid: undefined, cascade: false, restartIdentity: true, relationIds: [] },
  },
  {
    name: 'Truncate in a stream block',
    protoVersion: 2,
    inStream: true,
    message: { tag: 'truncate', xid: 804, cascade: true, restartIdentity: false, relationIds: [9] },
  },
  {
    name: 'Message, transactional',
    protoVersion: 1,
    inStream: false,
    message: {
      tag: 'message',
      xid: undefined,
      transactional: true,
      lsn: 28928368,
      prefix: 'pgcdc',
      content: Buffer.from('hello'),
    },
  },
  {
    name: 'Message, non-transactional, empty content',
    protoVersion: 1,
    inStream: false,
    message: { tag: 'message', xid: undefined, transactional: false, lsn: 1, prefix: '', content: Buffer.alloc(0) },
  },
  {
    name: 'Message in a stream block',
    protoVersion: 2,
    inStream: true,
    message: {
      tag: 'message',
      xid: 804,
      transactional: true,
      lsn: 38019904,
      prefix: 'pgcdc',
      content: Buffer.from([0, 255]),
    },
  },
  {
    name: 'Stream Start, first segment',
    protoVersion: 2,
    inStream: false,
    message: { tag: 'streamStart', xid: 804, firstSegment: true },
  },
  {
    name: 'Stream Start, later segment',
    protoVersion: 4,
    inStream: false,
    message: { tag: 'streamStart', xid: 804, firstSegment: false },
  },
  { name: 'Stream Stop', protoVersion: 2, inStream: true, message: { tag: 'streamStop' } },
  {
    name: 'Stream Commit',
    protoVersion: 2,
    inStream: false,
    message: { tag: 'streamCommit', xid: 804, flags: 0, commitLsn: 38023376, endLsn: 38023744, commitTime: T },
  },
  {
    name: 'Stream Abort (v2)',
    protoVersion: 2,
    inStream: false,
    message: { tag: 'streamAbort', xid: 806, subXid: 807, abortLsn: undefined, abortTime: undefined },
  },
  {
    name: 'Stream Abort (v4, streaming on: no abort LSN)',
    protoVersion: 4,
    inStream: false,
    message: { tag: 'streamAbort', xid: 806, subXid: 806, abortLsn: undefined, abortTime: undefined },
  },
  {
    name: 'Stream Abort (v4, streaming parallel)',
    protoVersion: 4,
    inStream: false,
    message: { tag: 'streamAbort', xid: 828, subXid: 828, abortLsn: 47419896, abortTime: T },
    validPrefixLengths: [9],
  },
  {
    name: 'Begin Prepare',
    protoVersion: 3,
    inStream: false,
    message: {
      tag: 'beginPrepare',
      prepareLsn: 42763448,
      endLsn: 42763736,
      prepareTime: T,
      xid: 817,
      gid: 'gid-commit',
    },
  },
  {
    name: 'Prepare',
    protoVersion: 3,
    inStream: false,
    message: {
      tag: 'prepare',
      flags: 0,
      prepareLsn: 42763448,
      endLsn: 42763736,
      prepareTime: T,
      xid: 817,
      gid: 'gid-commit',
    },
  },
  {
    name: 'Commit Prepared',
    protoVersion: 3,
    inStream: false,
    message: {
      tag: 'commitPrepared',
      flags: 0,
      commitLsn: 42763736,
      endLsn: 42763800,
      commitTime: T,
      xid: 817,
      gid: 'gid-commit',
    },
  },
  {
    name: 'Rollback Prepared',
    protoVersion: 4,
    inStream: false,
    message: {
      tag: 'rollbackPrepared',
      flags: 0,
      prepareEndLsn: 42764248,
      rollbackEndLsn: 42764312,
      prepareTime: T,
      rollbackTime: T + 142,
      xid: 818,
      gid: 'gid-rollback',
    },
  },
  {
    name: 'Stream Prepare',
    protoVersion: 3,
    inStream: false,
    message: {
      tag: 'streamPrepare',
      flags: 0,
      prepareLsn: 42847064,
      endLsn: 42847320,
      prepareTime: T,
      xid: 819,
      gid: '',
    },
  },
];

/** A decoder in the state the sample needs (inside a stream block when `inStream`). */
export function decoderFor(sample: Pick<Sample, 'protoVersion' | 'inStream'>): PgoutputDecoder {
  const decoder = new PgoutputDecoder({ protoVersion: sample.protoVersion });
  if (sample.inStream) decoder.decode(streamStart({ tag: 'streamStart', xid: 1, firstSegment: true }));
  return decoder;
}

/** The sample's bytes. */
export function bytesOf(sample: Sample): Buffer {
  return encode(sample.message);
}
