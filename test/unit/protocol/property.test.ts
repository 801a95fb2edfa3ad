/**
 * Property tests: whatever bytes arrive, decoding yields a message or a CdcError, never another
 * exception (no RangeError, TypeError or silent garbage escaping as something else).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CdcError } from '../../../src/core/errors.ts';
import { PgoutputDecoder, type PgoutputProtoVersion } from '../../../src/protocol/pgoutput.ts';
import { parseReplicationFrame } from '../../../src/protocol/replication.ts';
import { SAMPLES, bytesOf, decoderFor } from './samples.ts';

const PROTOCOL_CODES = new Set(['PROTOCOL_TRUNCATED', 'PROTOCOL_UNKNOWN_MESSAGE', 'PROTOCOL_INVALID']);

/** Runs `decode` and fails the property unless it returns or throws a protocol CdcError. */
function messageOrCdcError(decode: () => unknown): boolean {
  try {
    decode();
    return true;
  } catch (error) {
    if (error instanceof CdcError && PROTOCOL_CODES.has(error.code)) return true;
    throw error;
  }
}

const version = fc.constantFrom<PgoutputProtoVersion>(1, 2, 3, 4);
const TYPE_BYTES = [...'BMCORYIUDTSEcAbPKrp'].map((c) => c.charCodeAt(0));

void test('random bytes decode to a message or a CdcError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), version, fc.boolean(), (bytes, protoVersion, inStream) => {
      const decoder = decoderFor({ protoVersion: inStream && protoVersion === 1 ? 2 : protoVersion, inStream });
      return messageOrCdcError(() => decoder.decode(Buffer.from(bytes)));
    }),
    { numRuns: 5000 },
  );
});

void test('random bodies behind every known type byte decode to a message or a CdcError', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...TYPE_BYTES),
      fc.uint8Array({ maxLength: 80 }),
      version,
      fc.boolean(),
      (type, body, protoVersion, inStream) => {
        const decoder = decoderFor({ protoVersion: inStream && protoVersion === 1 ? 2 : protoVersion, inStream });
        return messageOrCdcError(() => decoder.decode(Buffer.concat([Buffer.from([type]), body])));
      },
    ),
    { numRuns: 10000 },
  );
});

void test('truncated and mutated valid messages decode to a message or a CdcError', () => {
  const samples = fc.constantFrom(...SAMPLES);
  const mutation = fc.record({
    cut: fc.nat(),
    flips: fc.array(fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }), { maxLength: 4 }),
    extra: fc.uint8Array({ maxLength: 8 }),
  });
  fc.assert(
    fc.property(samples, mutation, (sample, { cut, flips, extra }) => {
      const original = bytesOf(sample);
      const bytes = Buffer.concat([original.subarray(0, (cut % (original.length + 1)) | 0), Buffer.from(extra)]);
      for (const { at, value } of flips) if (bytes.length > 0) bytes[at % bytes.length] = value;
      const decoder = decoderFor(sample);
      return messageOrCdcError(() => decoder.decode(bytes));
    }),
    { numRuns: 10000 },
  );
});

void test('a decoder keeps working after any sequence of bad messages', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 32 }), { maxLength: 20 }), (garbage) => {
      const decoder = new PgoutputDecoder({ protoVersion: 4 });
      for (const bytes of garbage) messageOrCdcError(() => decoder.decode(Buffer.from(bytes)));
      decoder.reset();
      const sample = SAMPLES[0];
      assert.ok(sample);
      assert.deepEqual(decoder.decode(bytesOf(sample)), sample.message);
    }),
    { numRuns: 500 },
  );
});

void test('random replication frames parse or throw a CdcError', () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 40 }),
        fc
          .tuple(fc.constantFrom(0x77, 0x6b), fc.uint8Array({ maxLength: 40 }))
          .map(([t, b]) => Uint8Array.from([t, ...b])),
      ),
      (bytes) => messageOrCdcError(() => parseReplicationFrame(Buffer.from(bytes))),
    ),
    { numRuns: 5000 },
  );
});
