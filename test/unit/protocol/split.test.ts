/**
 * Frames split at every offset: each strict prefix of a message must fail with PROTOCOL_TRUNCATED
 * (never decode into something shorter, never throw anything untyped), and leave the decoder's
 * stream block state as it was.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseReplicationFrame } from '../../../src/protocol/replication.ts';
import { SAMPLES, bytesOf, decoderFor } from './samples.ts';
import { keepalive, xlogData } from './builder.ts';
import { assertCdcError } from './assertions.ts';

void describe('pgoutput messages split at every offset', () => {
  for (const sample of SAMPLES) {
    void test(sample.name, () => {
      const bytes = bytesOf(sample);
      const decoder = decoderFor(sample);
      for (let length = 0; length < bytes.length; length++) {
        const prefix = bytes.subarray(0, length);
        if (sample.validPrefixLengths?.includes(length)) {
          assert.doesNotThrow(() => decoder.decode(prefix), `prefix of ${length} bytes is a complete message`);
          continue;
        }
        assertCdcError(() => decoder.decode(prefix), 'PROTOCOL_TRUNCATED');
        assert.equal(decoder.inStreamBlock, sample.inStream, `state changed by a ${length}-byte prefix`);
      }
      assert.deepEqual(decoder.decode(bytes), sample.message);
    });
  }
});

void describe('replication frames split at every offset', () => {
  void test('keepalive: every strict prefix is truncated', () => {
    const bytes = keepalive({ walEnd: 0x2d4d7e8, sendTime: 817_000_000_000_000, replyRequested: true });
    for (let length = 0; length < bytes.length; length++) {
      assertCdcError(() => parseReplicationFrame(bytes.subarray(0, length)), 'PROTOCOL_TRUNCATED');
    }
  });

  void test('XLogData: every prefix shorter than the header is truncated, longer ones carry less data', () => {
    const data = Buffer.from('B0123456789abcdef0123');
    const bytes = xlogData({ walStart: 1, walEnd: 2, sendTime: 3, data });
    for (let length = 0; length < 25; length++) {
      assertCdcError(() => parseReplicationFrame(bytes.subarray(0, length)), 'PROTOCOL_TRUNCATED');
    }
    for (let length = 25; length <= bytes.length; length++) {
      const frame = parseReplicationFrame(bytes.subarray(0, length));
      assert.equal(frame.kind, 'xlogData');
      assert.equal(frame.kind === 'xlogData' ? frame.data.length : -1, length - 25);
    }
  });
});
