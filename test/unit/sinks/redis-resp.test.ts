/**
 * The Redis sink's protocol pieces without a server: the RESP2 reply reader fed replies split at
 * every byte (TCP may cut anywhere), and the XADD bytes built from a batch's slab compared with the
 * same commands encoded one argument at a time.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventBatch, EventFlag, TopicRegistry } from '../../../src/sinks/batch.ts';
import { EventBatchBuilder } from '../../../src/sinks/batch-builder.ts';
import { commandHead, EntryEncoder, findOp } from '../../../src/sinks/redis/entries.ts';
import {
  encodeCommand,
  INCOMPLETE,
  ReplyReader,
  RespError,
  RespProtocolError,
  SKIPPED,
  type RespValue,
} from '../../../src/sinks/redis/resp.ts';

const REPLIES = Buffer.from(
  '+OK\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n:42\r\n:-7\r\n' +
    '$5\r\nhello\r\n$-1\r\n$0\r\n\r\n*2\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$2\r\nid\r\n$4\r\na\r\nb\r\n:1\r\n*0\r\n*-1\r\n' +
    '$12\r\n1700000000-0\r\n',
);

const EXPECTED: RespValue[] = [
  'OK',
  new RespError('WRONGTYPE Operation against a key holding the wrong kind of value'),
  42,
  -7,
  Buffer.from('hello'),
  null,
  Buffer.alloc(0),
  [[Buffer.from('1-0'), [Buffer.from('id'), Buffer.from('a\r\nb')]], 1],
  [],
  null,
  Buffer.from('1700000000-0'),
];

function readAll(reader: ReplyReader, keep: boolean, out: unknown[]): void {
  for (;;) {
    const value = reader.next(keep);
    if (value === INCOMPLETE) return;
    out.push(value);
  }
}

describe('RESP2 reply reader', () => {
  it('reads every reply type, whatever the split of the bytes into chunks', () => {
    for (let cut = 0; cut <= REPLIES.length; cut++) {
      for (const step of [1, 2, 7, REPLIES.length]) {
        const reader = new ReplyReader();
        const out: unknown[] = [];
        reader.push(REPLIES.subarray(0, cut));
        readAll(reader, true, out);
        for (let at = cut; at < REPLIES.length; at += step) {
          reader.push(REPLIES.subarray(at, Math.min(at + step, REPLIES.length)));
          readAll(reader, true, out);
        }
        assert.deepEqual(out, EXPECTED, `cut at ${cut}, then chunks of ${step}`);
        assert.equal(reader.buffered, 0);
      }
    }
  });

  it('skips replies without materialising them, except errors', () => {
    const reader = new ReplyReader();
    const out: unknown[] = [];
    for (let at = 0; at < REPLIES.length; at += 3) {
      reader.push(REPLIES.subarray(at, at + 3));
      readAll(reader, false, out);
    }
    assert.equal(out.length, EXPECTED.length);
    const error = out[1];
    assert.ok(error instanceof RespError);
    assert.equal(error.prefix, 'WRONGTYPE');
    assert.ok(out.every((value, i) => i === 1 || value === SKIPPED));
  });

  it('refuses bytes that are not RESP2', () => {
    const reader = new ReplyReader();
    reader.push(Buffer.from('?what\r\n'));
    assert.throws(() => reader.next(true), RespProtocolError);
  });
});

describe('XADD commands from a batch slab', () => {
  const lines = [
    {
      topic: 'shop.public.orders',
      line:
        '{"id":"0/16B3748:0","topic":"shop.public.orders","key":{"op":"k"},"value":{"before":null,' +
        '"after":{"op":"x\\"op\\":\\"y","n":"é"},"source":{"lsn":1},"op":"c","ts_ms":1,"transaction":null}}',
    },
    {
      topic: 'shop.public.items',
      line: '{"id":"0/16B3748:1","topic":"shop.public.items","key":{"n":1},"value":{"op":"d","ts_ms":2}}',
    },
    {
      topic: 'shop.public.flat',
      line:
        '{"id":"0/16B3748:2","topic":"shop.public.flat","key":{"id":1},"value":{"id":1,"op":"x",' +
        '"__op":"u","__deleted":false,"__table":"public.flat","__lsn":1,"__ts_ms":2}}',
    },
    {
      topic: 'shop.transaction',
      line: '{"id":"0/16B3748:end","topic":"shop.transaction","key":{"id":"1:0/1"},"value":{"status":"END"}}',
    },
  ];

  it('finds the top-level op from the end, past columns named op', () => {
    const data = Buffer.from(lines[0]?.line ?? '');
    const at = findOp(data, 0, data.length);
    assert.equal(data.toString('utf8', at, at + 1), 'c');
  });

  it('equals the commands encoded argument by argument', () => {
    const batch = EventBatch.of(lines);
    for (const maxLen of [undefined, 1000]) {
      const heads = new Map<number, Buffer>();
      const built = new EntryEncoder().encode(batch, (n) => {
        let head = heads.get(n);
        if (head === undefined) heads.set(n, (head = commandHead(`cdc:${batch.topicName(n)}`, maxLen)));
        return head;
      });
      const ops = ['c', 'd', 'u', ''];
      const expected = Buffer.concat(
        lines.map(({ topic, line }, i) =>
          encodeCommand([
            'XADD',
            `cdc:${topic}`,
            ...(maxLen === undefined ? [] : ['MAXLEN', '~', maxLen]),
            '*',
            'id',
            batch.id(i),
            'op',
            ops[i] ?? '',
            'event',
            line,
          ]),
        ),
      );
      assert.equal(built.toString('utf8'), expected.toString('utf8'));
    }
  });
  it('gives a delete without a value (a flat tombstone) op d from its flag', () => {
    const registry = new TopicRegistry();
    const builder = new EventBatchBuilder(registry);
    const line = '{"id":"0/1:0","topic":"shop.public.flat","key":{"id":1},"value":null}';
    builder.startEvent();
    builder.text(line);
    builder.endEvent(registry.number('shop.public.flat'), EventFlag.DELETE);
    const head = commandHead('k', undefined);
    const built = new EntryEncoder().encode(builder.take(1), () => head);
    const expected = encodeCommand(['XADD', 'k', '*', 'id', '0/1:0', 'op', 'd', 'event', line]);
    assert.equal(built.toString('utf8'), expected.toString('utf8'));
  });
});
