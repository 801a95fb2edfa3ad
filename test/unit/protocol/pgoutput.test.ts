import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PgoutputDecoder, type PgoutputProtoVersion } from '../../../src/protocol/pgoutput.ts';
import { UNCHANGED_TOAST } from '../../../src/protocol/messages.ts';
import {
  Bytes,
  type Msg,
  begin,
  del,
  insert,
  message,
  relation,
  streamAbort,
  streamStart,
  streamStop,
  truncate,
  update,
} from './builder.ts';
import { SAMPLES, bytesOf, decoderFor } from './samples.ts';
import { assertCdcError } from './assertions.ts';

void describe('pgoutput round trips', () => {
  for (const sample of SAMPLES) {
    void test(sample.name, () => {
      const decoder = decoderFor(sample);
      assert.deepEqual(decoder.decode(bytesOf(sample)), sample.message);
    });
  }

  void test('every message type has a sample', () => {
    const tags = new Set(SAMPLES.map((s) => s.message.tag));
    assert.equal(tags.size, 19);
  });
});

void describe('pgoutput stream block state', () => {
  const start = streamStart({ tag: 'streamStart', xid: 5, firstSegment: true });
  const row: Msg<'insert'> = { tag: 'insert', xid: undefined, relationId: 1, newTuple: ['a'] };

  void test('data messages carry an xid only between Stream Start and Stream Stop', () => {
    const decoder = new PgoutputDecoder({ protoVersion: 2 });
    assert.equal(decoder.inStreamBlock, false);
    assert.deepEqual(decoder.decode(insert(row)), row);
    decoder.decode(start);
    assert.equal(decoder.inStreamBlock, true);
    assert.deepEqual(decoder.decode(insert({ ...row, xid: 5 })), { ...row, xid: 5 });
    // The same bytes without the xid no longer parse: the relation oid is read as the xid.
    assertCdcError(() => decoder.decode(insert(row)), 'PROTOCOL_INVALID', /new tuple marker/);
    decoder.decode(streamStop());
    assert.equal(decoder.inStreamBlock, false);
    assert.deepEqual(decoder.decode(insert(row)), row);
  });

  void test('a failed Stream Start leaves the state unchanged', () => {
    const decoder = new PgoutputDecoder({ protoVersion: 2 });
    assertCdcError(() => decoder.decode(start.subarray(0, 5)), 'PROTOCOL_TRUNCATED');
    assert.equal(decoder.inStreamBlock, false);
  });

  void test('reset() leaves the block', () => {
    const decoder = decoderFor({ protoVersion: 2, inStream: true });
    decoder.reset();
    assert.equal(decoder.inStreamBlock, false);
  });

  void test('Stream Start inside a block and Stream Stop outside one are invalid', () => {
    const decoder = decoderFor({ protoVersion: 2, inStream: true });
    assertCdcError(() => decoder.decode(start), 'PROTOCOL_INVALID', /Stream Start inside a stream block/);
    assert.equal(decoder.inStreamBlock, true);
    assertCdcError(
      () => new PgoutputDecoder({ protoVersion: 2 }).decode(streamStop()),
      'PROTOCOL_INVALID',
      /outside a stream block/,
    );
  });

  void test('transaction boundaries inside a block are invalid', () => {
    const decoder = decoderFor({ protoVersion: 3, inStream: true });
    const boundaries = SAMPLES.filter((s) =>
      [
        'begin',
        'commit',
        'streamCommit',
        'streamAbort',
        'beginPrepare',
        'prepare',
        'commitPrepared',
        'rollbackPrepared',
        'streamPrepare',
      ].includes(s.message.tag),
    );
    assert.ok(boundaries.length >= 9);
    for (const sample of boundaries)
      assertCdcError(() => decoder.decode(bytesOf(sample)), 'PROTOCOL_INVALID', /inside a stream block/);
  });
});

void describe('pgoutput protocol versions', () => {
  const byTag = (tag: string): Buffer => {
    const sample = SAMPLES.find((s) => s.message.tag === tag);
    assert.ok(sample, tag);
    return bytesOf(sample);
  };

  void test('streaming messages need version 2', () => {
    const decoder = new PgoutputDecoder({ protoVersion: 1 });
    for (const tag of ['streamStart', 'streamStop', 'streamCommit', 'streamAbort']) {
      assertCdcError(
        () => decoder.decode(byTag(tag)),
        'PROTOCOL_UNKNOWN_MESSAGE',
        /protocol version 1; it needs version 2/,
      );
    }
  });

  void test('two-phase messages need version 3', () => {
    const decoder = new PgoutputDecoder({ protoVersion: 2 });
    for (const tag of ['beginPrepare', 'prepare', 'commitPrepared', 'rollbackPrepared', 'streamPrepare']) {
      assertCdcError(() => decoder.decode(byTag(tag)), 'PROTOCOL_UNKNOWN_MESSAGE', /needs version 3/);
    }
  });

  void test('Stream Abort carries abort LSN and time only from version 4', () => {
    const parallel = streamAbort({ tag: 'streamAbort', xid: 1, subXid: 2, abortLsn: 3, abortTime: 4 });
    assertCdcError(() => new PgoutputDecoder({ protoVersion: 3 }).decode(parallel), 'PROTOCOL_INVALID', /trailing/);
    assert.deepEqual(new PgoutputDecoder({ protoVersion: 4 }).decode(parallel), {
      tag: 'streamAbort',
      xid: 1,
      subXid: 2,
      abortLsn: 3,
      abortTime: 4,
    });
  });

  void test('the constructor refuses versions it does not know', () => {
    assert.throws(() => new PgoutputDecoder({ protoVersion: Number('5') as PgoutputProtoVersion }), {
      name: 'CdcError',
      code: 'INTERNAL',
    });
  });
});

void describe('pgoutput malformed input', () => {
  const decoder = new PgoutputDecoder({ protoVersion: 4 });

  void test('empty input and unknown types', () => {
    assertCdcError(() => decoder.decode(Buffer.alloc(0)), 'PROTOCOL_TRUNCATED');
    assertCdcError(() => decoder.decode(Buffer.from('Z')), 'PROTOCOL_UNKNOWN_MESSAGE', /'Z' \(0x5a\)/);
    assertCdcError(() => decoder.decode(Buffer.from([0])), 'PROTOCOL_UNKNOWN_MESSAGE', /0x00/);
    assertCdcError(() => decoder.decode(Buffer.from([0xff, 1, 2])), 'PROTOCOL_UNKNOWN_MESSAGE', /0xff/);
  });

  void test('a trailing byte after any message is invalid', () => {
    for (const sample of SAMPLES) {
      const bytes = Buffer.concat([bytesOf(sample), Buffer.from([0])]);
      // v4 Stream Abort without the optional fields: one more byte reads as the start of them.
      const expected =
        sample.protoVersion === 4 && sample.message.tag === 'streamAbort' && sample.message.abortLsn === undefined;
      assertCdcError(() => decoderFor(sample).decode(bytes), expected ? 'PROTOCOL_TRUNCATED' : 'PROTOCOL_INVALID');
    }
  });

  void test('errors name the message and the field', () => {
    const bytes = insert({ tag: 'insert', xid: undefined, relationId: 1, newTuple: ['hello'] });
    assertCdcError(
      () => decoder.decode(bytes.subarray(0, bytes.length - 2)),
      'PROTOCOL_TRUNCATED',
      /pgoutput Insert .*text value/,
    );
    const rel = relation({
      tag: 'relation',
      xid: undefined,
      relationId: 1,
      namespace: 'public',
      name: 'items',
      replicaIdentity: 'd',
      columns: [],
    });
    assertCdcError(
      () => decoder.decode(rel.subarray(0, 8)),
      'PROTOCOL_TRUNCATED',
      /pgoutput Relation .*namespace: no NUL/,
    );
  });

  void test('tuple markers and value kinds', () => {
    const head = (type: string): Bytes => new Bytes().char(type).u32(1);
    assertCdcError(() => decoder.decode(head('I').char('K').tuple([]).build()), 'PROTOCOL_INVALID', /'N'/);
    assertCdcError(() => decoder.decode(head('U').char('X').build()), 'PROTOCOL_INVALID', /'K', 'O' or 'N'/);
    assertCdcError(
      () => decoder.decode(head('U').char('K').tuple([]).char('O').tuple([]).build()),
      'PROTOCOL_INVALID',
      /after the old row/,
    );
    assertCdcError(() => decoder.decode(head('D').char('N').tuple([]).build()), 'PROTOCOL_INVALID', /'K' or 'O'/);
    assertCdcError(
      () => decoder.decode(head('I').char('N').i16(1).char('x').build()),
      'PROTOCOL_INVALID',
      /column kind 'x'/,
    );
    assertCdcError(
      () => decoder.decode(head('I').char('N').i16(-1).build()),
      'PROTOCOL_INVALID',
      /negative column count/,
    );
    assertCdcError(
      () => decoder.decode(head('I').char('N').i16(1).char('t').i32(-1).build()),
      'PROTOCOL_INVALID',
      /negative length/,
    );
    assertCdcError(
      () => decoder.decode(head('I').char('N').i16(1).char('b').i32(-5).build()),
      'PROTOCOL_INVALID',
      /negative length/,
    );
  });

  void test('relation enums and counts', () => {
    const rel = (identity: string, count: number): Buffer =>
      new Bytes().char('R').u32(1).cstring('s').cstring('t').char(identity).i16(count).build();
    assertCdcError(() => decoder.decode(rel('x', 0)), 'PROTOCOL_INVALID', /replica identity 'x'/);
    assertCdcError(() => decoder.decode(rel('d', -2)), 'PROTOCOL_INVALID', /negative column count/);
  });

  void test('truncate counts are checked before allocating', () => {
    assertCdcError(
      () => decoder.decode(new Bytes().char('T').i32(-1).u8(0).build()),
      'PROTOCOL_INVALID',
      /negative relation count/,
    );
    assertCdcError(
      () => decoder.decode(new Bytes().char('T').i32(2_147_483_647).u8(0).u32(1).build()),
      'PROTOCOL_TRUNCATED',
      /relation oids/,
    );
  });

  void test('64-bit values beyond 2^53 are refused, not rounded', () => {
    const huge = new Bytes().char('B').u32(0x0020_0000).u32(0).i64(0).u32(1).build();
    assertCdcError(() => decoder.decode(huge), 'PROTOCOL_INVALID', /final LSN .* 53 bits/);
    const allOnes = new Bytes().char('B').u64(0).u32(0xffff_ffff).u32(0xffff_ffff).u32(1).build();
    assert.deepEqual(decoder.decode(allOnes), { tag: 'begin', finalLsn: 0, commitTime: -1, xid: 1 });
    const farPast = new Bytes().char('B').u64(0).u32(0x8000_0000).u32(0).u32(1).build();
    assertCdcError(() => decoder.decode(farPast), 'PROTOCOL_INVALID', /commit time/);
  });

  void test('a message content length beyond the message is truncated', () => {
    const bytes = new Bytes().char('M').u8(1).u64(1).cstring('p').i32(100).raw(Buffer.from('short')).build();
    assertCdcError(() => decoder.decode(bytes), 'PROTOCOL_TRUNCATED', /content/);
  });
});

void describe('pgoutput decoded messages never alias the input', () => {
  void test('binary values and message contents are copies', () => {
    const decoder = new PgoutputDecoder({ protoVersion: 1 });
    const rowBytes = insert({
      tag: 'insert',
      xid: undefined,
      relationId: 1,
      newTuple: [Buffer.from([1, 2, 3]), 'text'],
    });
    const row = decoder.decode(rowBytes);
    const msgBytes = message({
      tag: 'message',
      xid: undefined,
      transactional: true,
      lsn: 1,
      prefix: 'p',
      content: Buffer.from([4, 5]),
    });
    const msg = decoder.decode(msgBytes);
    rowBytes.fill(0);
    msgBytes.fill(0);
    assert.equal(row.tag, 'insert');
    assert.deepEqual(row.tag === 'insert' ? row.newTuple : [], [Buffer.from([1, 2, 3]), 'text']);
    assert.deepEqual(msg.tag === 'message' ? msg.content : undefined, Buffer.from([4, 5]));
  });

  void test('one decoder decodes many messages in a row (the reader is reused)', () => {
    const decoder = new PgoutputDecoder({ protoVersion: 1 });
    const first = update({
      tag: 'update',
      xid: undefined,
      relationId: 1,
      keyTuple: undefined,
      oldTuple: ['a', null],
      newTuple: ['b', UNCHANGED_TOAST],
    });
    const second = del({ tag: 'delete', xid: undefined, relationId: 2, keyTuple: ['k'], oldTuple: undefined });
    const third = truncate({
      tag: 'truncate',
      xid: undefined,
      cascade: false,
      restartIdentity: false,
      relationIds: [1, 2, 3],
    });
    const fourth = begin({ tag: 'begin', finalLsn: 10, commitTime: 20, xid: 30 });
    for (let i = 0; i < 3; i++) {
      assert.equal(decoder.decode(first).tag, 'update');
      assert.equal(decoder.decode(second).tag, 'delete');
      assert.equal(decoder.decode(third).tag, 'truncate');
      assert.equal(decoder.decode(fourth).tag, 'begin');
    }
  });
});
