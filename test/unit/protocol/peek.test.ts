/**
 * Looking at a message or frame without decoding it: what the spill path of streamed transactions and the stream
 * loop use on the hot path (src/protocol/pgoutput.ts, src/protocol/replication.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  carriesStreamXid,
  isStreamControl,
  peekMessageType,
  peekStreamXid,
  PgoutputDecoder,
} from '../../../src/protocol/pgoutput.ts';
import { isReplyRequest } from '../../../src/protocol/replication.ts';
import type { PgoutputMessage } from '../../../src/protocol/messages.ts';
import { encode, keepalive, xlogData } from './builder.ts';
import { assertCdcError } from './assertions.ts';

const insert = (xid: number | undefined): PgoutputMessage => ({
  tag: 'insert',
  xid,
  relationId: 16384,
  newTuple: ['1', null],
});

void test('peekMessageType reads the type byte, and -1 for an empty message', () => {
  assert.equal(peekMessageType(encode(insert(undefined))), 'I'.charCodeAt(0));
  assert.equal(peekMessageType(encode({ tag: 'streamStop' })), 'E'.charCodeAt(0));
  assert.equal(peekMessageType(Buffer.alloc(0)), -1);
});

void test('stream control messages and the messages that carry an xid inside a stream block', () => {
  const control: PgoutputMessage[] = [
    { tag: 'streamStart', xid: 7, firstSegment: true },
    { tag: 'streamStop' },
    { tag: 'streamCommit', xid: 7, flags: 0, commitLsn: 16, endLsn: 24, commitTime: 0 },
    { tag: 'streamAbort', xid: 7, subXid: 7, abortLsn: undefined, abortTime: undefined },
  ];
  for (const m of control) {
    const type = peekMessageType(encode(m));
    assert.ok(isStreamControl(type), m.tag);
    assert.ok(!carriesStreamXid(type), m.tag);
  }
  const data: PgoutputMessage[] = [
    insert(9),
    { tag: 'update', xid: 9, relationId: 1, keyTuple: undefined, oldTuple: undefined, newTuple: ['2'] },
    { tag: 'delete', xid: 9, relationId: 1, keyTuple: ['2'], oldTuple: undefined },
    { tag: 'truncate', xid: 9, cascade: false, restartIdentity: false, relationIds: [1] },
    { tag: 'message', xid: 9, transactional: true, lsn: 8, prefix: 'p', content: Buffer.from('x') },
    { tag: 'relation', xid: 9, relationId: 1, namespace: 'public', name: 't', replicaIdentity: 'd', columns: [] },
    { tag: 'type', xid: 9, typeOid: 5, namespace: 'public', name: 'mood' },
  ];
  for (const m of data) {
    const bytes = encode(m);
    assert.ok(carriesStreamXid(peekMessageType(bytes)), m.tag);
    assert.ok(!isStreamControl(peekMessageType(bytes)), m.tag);
    assert.equal(peekStreamXid(bytes), 9, `${m.tag} carries its xid right after the type byte`);
  }
  for (const m of [
    { tag: 'begin', finalLsn: 8, commitTime: 0, xid: 3 },
    { tag: 'commit', flags: 0, commitLsn: 8, endLsn: 16, commitTime: 0 },
  ] as const) {
    const type = peekMessageType(encode(m));
    assert.ok(!carriesStreamXid(type) && !isStreamControl(type), m.tag);
  }
});

void test('peekStreamXid refuses a message too short to hold an xid', () => {
  assertCdcError(() => peekStreamXid(Buffer.from([0x49, 0, 0])), 'PROTOCOL_TRUNCATED', /too short for its xid/);
  assertCdcError(() => peekStreamXid(Buffer.alloc(0)), 'PROTOCOL_TRUNCATED', /\(empty\)/);
});

void test('a decoder can start inside a stream block (a spill file decoded after Stream Stop)', () => {
  const decoder = new PgoutputDecoder({ protoVersion: 2, inStreamBlock: true });
  assert.equal(decoder.inStreamBlock, true);
  const decoded = decoder.decode(encode(insert(42)));
  assert.equal(decoded.tag === 'insert' ? decoded.xid : undefined, 42);
  assertCdcError(() => new PgoutputDecoder({ protoVersion: 1, inStreamBlock: true }), 'INTERNAL');
});

void test('isReplyRequest: only a keepalive with the reply flag set', () => {
  assert.equal(isReplyRequest(keepalive({ walEnd: 5, sendTime: 0, replyRequested: true })), true);
  assert.equal(isReplyRequest(keepalive({ walEnd: 5, sendTime: 0, replyRequested: false })), false);
  const data = Buffer.alloc(20, 1);
  assert.equal(isReplyRequest(xlogData({ walStart: 1, walEnd: 1, sendTime: 0, data })), false);
  assert.equal(isReplyRequest(Buffer.from([0x6b])), false, 'a truncated keepalive is left to the parser');
});
