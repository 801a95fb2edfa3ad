import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BufferReader } from '../../../src/protocol/reader.ts';
import { Bytes } from './builder.ts';
import { assertCdcError } from './assertions.ts';

void test('reads big-endian fields in order and tracks the offset', () => {
  const buf = new Bytes()
    .u8(0xff)
    .i16(-32767)
    .i32(-2)
    .u32(0x8000_0000)
    .u64(0x16_b374d848)
    .i64(-1)
    .cstring('hé')
    .cstring('')
    .raw(Buffer.from('abcdef'))
    .build();
  const r = new BufferReader();
  r.reset(buf, 'test');
  assert.equal(r.u8('a'), 0xff);
  assert.equal(r.i16('b'), -32767);
  assert.equal(r.i32('c'), -2);
  assert.equal(r.u32('d'), 0x8000_0000);
  assert.equal(r.u64('e'), 0x16_b374d848);
  assert.equal(r.i64('f'), -1);
  assert.equal(r.cstring('g'), 'hé');
  assert.equal(r.cstring('h'), '');
  assert.equal(r.offset, buf.length - 6);
  assert.equal(r.utf8(2, 'i'), 'ab');
  assert.deepEqual(r.bytes(1, 'j'), Buffer.from('c'));
  assert.deepEqual(r.copyBytes(1, 'k'), Buffer.from('d'));
  assert.equal(r.remaining, 2);
  assert.deepEqual(r.rest(), Buffer.from('ef'));
  assert.equal(r.remaining, 0);
  r.expectEnd();
});

void test('64-bit reads are exact up to 2^53 - 1 and refuse more', () => {
  const r = new BufferReader();
  r.reset(new Bytes().u64(Number.MAX_SAFE_INTEGER).i64(-Number.MAX_SAFE_INTEGER).build(), 'test');
  assert.equal(r.u64('max'), Number.MAX_SAFE_INTEGER);
  assert.equal(r.i64('min'), -Number.MAX_SAFE_INTEGER);
  r.reset(Buffer.from('0020000000000000', 'hex'), 'test');
  assertCdcError(() => r.u64('big LSN'), 'PROTOCOL_INVALID', /big LSN .*53 bits/);
  r.reset(Buffer.from('ffe0000000000000', 'hex'), 'test'); // -2^53
  assertCdcError(() => r.i64('old time'), 'PROTOCOL_INVALID', /old time/);
  r.reset(Buffer.from('ffe0000000000001', 'hex'), 'test'); // -(2^53 - 1)
  assert.equal(r.i64('ok'), -Number.MAX_SAFE_INTEGER);
});

void test('every read is bounds-checked and names what it was reading', () => {
  const r = new BufferReader();
  const reads: [string, (what: string) => unknown][] = [
    ['u8', (w) => r.u8(w)],
    ['i16', (w) => r.i16(w)],
    ['i32', (w) => r.i32(w)],
    ['u32', (w) => r.u32(w)],
    ['u64', (w) => r.u64(w)],
    ['i64', (w) => r.i64(w)],
    ['cstring', (w) => r.cstring(w)],
    ['utf8', (w) => r.utf8(1, w)],
    ['bytes', (w) => r.bytes(1, w)],
    ['copyBytes', (w) => r.copyBytes(1, w)],
    ['ensure', (w) => r.ensure(1, w)],
  ];
  for (const [name, read] of reads) {
    r.reset(Buffer.alloc(0), 'pgoutput Test');
    assertCdcError(
      () => read(`the ${name} field`),
      'PROTOCOL_TRUNCATED',
      new RegExp(`pgoutput Test message truncated reading the ${name} field`),
    );
  }
  r.reset(Buffer.from('abc'), 'pgoutput Test');
  assertCdcError(() => r.cstring('name'), 'PROTOCOL_TRUNCATED', /no NUL terminator/);
  assertCdcError(() => r.utf8(-1, 'text'), 'PROTOCOL_INVALID', /negative length -1 for text/);
  assertCdcError(() => r.bytes(-1, 'blob'), 'PROTOCOL_INVALID', /negative length/);
  assertCdcError(() => r.expectEnd(), 'PROTOCOL_INVALID', /3 unexpected trailing byte/);
});

void test('bytes is a view, copyBytes a copy', () => {
  const buf = Buffer.from('xyz');
  const r = new BufferReader();
  r.reset(buf, 'test');
  const view = r.bytes(1, 'view');
  const copy = r.copyBytes(1, 'copy');
  buf.fill(0);
  assert.deepEqual(view, Buffer.from([0]));
  assert.deepEqual(copy, Buffer.from('y'));
});

void test('a reader over a subarray stays inside it', () => {
  const parent = Buffer.from('ab\0cd\0');
  const r = new BufferReader();
  r.reset(parent.subarray(0, 2), 'test');
  assertCdcError(() => r.cstring('name'), 'PROTOCOL_TRUNCATED');
  r.reset(parent.subarray(3, 5), 'test');
  assertCdcError(() => r.u32('n'), 'PROTOCOL_TRUNCATED');
});
