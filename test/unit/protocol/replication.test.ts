import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PG_EPOCH_OFFSET_MICROS } from '../../../src/protocol/messages.ts';
import {
  STANDBY_STATUS_LENGTH,
  encodeStandbyStatus,
  parseReplicationFrame,
  pgClockMicros,
} from '../../../src/protocol/replication.ts';
import { keepalive, xlogData } from './builder.ts';
import { assertCdcError } from './assertions.ts';

void test('parses XLogData with the payload as a view of the frame', () => {
  const frame = xlogData({
    walStart: 0x2d4d720,
    walEnd: 0x16_b374d848,
    sendTime: 817_000_000_000_123,
    data: Buffer.from('E'),
  });
  const parsed = parseReplicationFrame(frame);
  assert.deepEqual(parsed, {
    kind: 'xlogData',
    walStart: 0x2d4d720,
    walEnd: 0x16_b374d848,
    sendTime: 817_000_000_000_123,
    data: Buffer.from('E'),
  });
  assert.equal(
    parsed.kind === 'xlogData' &&
      parsed.data.buffer === frame.buffer &&
      parsed.data.byteOffset === frame.byteOffset + 25,
    true,
  );
});

void test('parses XLogData with an empty payload', () => {
  const parsed = parseReplicationFrame(xlogData({ walStart: 0, walEnd: 0, sendTime: 0, data: Buffer.alloc(0) }));
  assert.equal(parsed.kind === 'xlogData' ? parsed.data.length : -1, 0);
});

void test('parses keepalives, with and without a reply request', () => {
  assert.deepEqual(parseReplicationFrame(keepalive({ walEnd: 42, sendTime: -5, replyRequested: true })), {
    kind: 'keepalive',
    walEnd: 42,
    sendTime: -5,
    replyRequested: true,
  });
  const quiet = parseReplicationFrame(keepalive({ walEnd: 42, sendTime: 1, replyRequested: false }));
  assert.equal(quiet.kind === 'keepalive' && quiet.replyRequested, false);
});

void test('a keepalive with appended bytes still parses (no version negotiation here)', () => {
  const frame = Buffer.concat([keepalive({ walEnd: 1, sendTime: 2, replyRequested: false }), Buffer.from([9, 9])]);
  assert.equal(parseReplicationFrame(frame).kind, 'keepalive');
});

void test('unknown and empty frames', () => {
  assertCdcError(() => parseReplicationFrame(Buffer.alloc(0)), 'PROTOCOL_TRUNCATED');
  assertCdcError(() => parseReplicationFrame(Buffer.from('r')), 'PROTOCOL_UNKNOWN_MESSAGE', /0x72/);
  assertCdcError(() => parseReplicationFrame(Buffer.from([0x00, 1])), 'PROTOCOL_UNKNOWN_MESSAGE', /2-byte/);
});

void test('truncated headers name the field', () => {
  const frame = xlogData({ walStart: 1, walEnd: 2, sendTime: 3, data: Buffer.alloc(0) });
  assertCdcError(() => parseReplicationFrame(frame.subarray(0, 12)), 'PROTOCOL_TRUNCATED', /XLogData .*WAL end/);
  const ka = keepalive({ walEnd: 1, sendTime: 2, replyRequested: true });
  assertCdcError(() => parseReplicationFrame(ka.subarray(0, 17)), 'PROTOCOL_TRUNCATED', /keepalive .*reply-requested/);
});

void test('a WAL position beyond 2^53 is refused', () => {
  const frame = Buffer.alloc(18);
  frame[0] = 0x6b;
  frame.writeUInt32BE(0xffff_ffff, 1);
  assertCdcError(() => parseReplicationFrame(frame), 'PROTOCOL_INVALID', /WAL end/);
});

void test('encodes a 34-byte standby status update', () => {
  const out = encodeStandbyStatus({
    write: 0x16_b374d848,
    flush: 0x1_0000_0000,
    apply: 7,
    clock: 817_000_000_000_123,
    replyRequested: true,
  });
  assert.equal(out.length, STANDBY_STATUS_LENGTH);
  assert.equal(out.length, 34);
  assert.equal(String.fromCharCode(out[0] ?? 0), 'r');
  assert.equal(out.readBigUInt64BE(1), 0x16_b374d848n);
  assert.equal(out.readBigUInt64BE(9), 0x1_0000_0000n);
  assert.equal(out.readBigUInt64BE(17), 7n);
  assert.equal(out.readBigInt64BE(25), 817_000_000_000_123n);
  assert.equal(out[33], 1);
  const negative = encodeStandbyStatus({ write: 0, flush: 0, apply: 0, clock: -2, replyRequested: false });
  assert.equal(negative.readBigInt64BE(25), -2n);
  assert.equal(negative[33], 0);
});

void test('refuses to encode positions that are not exact LSNs', () => {
  const ok = { write: 1, flush: 1, apply: 1, clock: 1, replyRequested: false };
  for (const bad of [-1, 1.5, 2 ** 53, Number.NaN]) {
    assert.throws(() => encodeStandbyStatus({ ...ok, flush: bad }), { name: 'CdcError', code: 'INTERNAL' });
  }
  assert.throws(() => encodeStandbyStatus({ ...ok, clock: 0.5 }), { name: 'CdcError', code: 'INTERNAL' });
});

void test('pgClockMicros counts from 2000-01-01 UTC', () => {
  assert.equal(pgClockMicros(Date.UTC(2000, 0, 1)), 0);
  assert.equal(pgClockMicros(Date.UTC(2000, 0, 1, 0, 0, 1)), 1_000_000);
  assert.equal(pgClockMicros(0), -PG_EPOCH_OFFSET_MICROS);
});
