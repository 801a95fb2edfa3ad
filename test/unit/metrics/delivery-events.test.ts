/**
 * What Delivery reports per batch and per checkpoint (batch-written, checkpoint-stored): counts by table
 * and op from the per-event tallies, across a batch cut inside an open transaction; commit times; the
 * sample of keys. A counting sink, and the harness's in-memory offset store.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Delivery } from '../../../src/pipeline/delivery.ts';
import { OP_TALLY } from '../../../src/envelope/change-sink.ts';
import type { BatchWritten, EngineEvent } from '../../../src/core/engine-events.ts';
import { MemoryOffsetStore } from '../../harness/memory-offsets.ts';
import type { EventBatch, Sink, SinkPosition } from '../../../src/sinks/contract.ts';

class MemorySink implements Sink {
  readonly kind = 'memory';
  written = 0;
  open(): Promise<void> {
    return Promise.resolve();
  }
  write(batch: EventBatch): Promise<SinkPosition> {
    this.written += batch.count;
    return Promise.resolve({ count: this.written });
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

function setup() {
  const events: EngineEvent[] = [];
  const delivery = new Delivery(
    new MemorySink(),
    new MemoryOffsetStore(),
    { systemId: '1', timeline: 1, database: 'd', slot: 's', publication: 'p' },
    { lsn: 100, position: {} },
    { maxEvents: 1000, maxDelayMs: 1 },
    {
      pressure: () => undefined,
      failed: (error) => assert.fail(error),
      stored: () => undefined,
      ready: () => undefined,
      events: { emit: (event) => events.push(event) },
    },
  );
  return { delivery, events };
}

/** An event line as envelope/ lays it out. */
const line = (id: string, key: string): string =>
  `{"id":"${id}","topic":"db.public.t","key":${key},"value":{"secret":"do not keep"}}`;

function change(delivery: Delivery, tally: number, id: string, key: string): void {
  delivery.writer.startEvent();
  delivery.writer.text(line(id, key));
  delivery.eventEnd(0, 0, tally);
}

const batches = (events: readonly EngineEvent[]): BatchWritten[] =>
  events.filter((e): e is BatchWritten => e.type === 'batch-written');

test('batch-written counts by table and op; an open transaction counts with the batch it is cut into', async () => {
  const { delivery, events } = setup();
  const a = delivery.tallyBase('public.a');
  const b = delivery.tallyBase('public.b');
  assert.equal(delivery.tallyBase('public.a'), a);
  assert.notEqual(a, b);
  change(delivery, a + OP_TALLY.c, '0/1:1', '{"id":1}');
  change(delivery, a + OP_TALLY.c, '0/1:2', '{"id":2}');
  change(delivery, b + OP_TALLY.d, '0/1:3', '{"id":3}');
  delivery.event(0, line('0/1:4', 'null')); // a message: no tally
  delivery.commit(200, 150, 7, 1_700_000_000_000);
  change(delivery, a + OP_TALLY.u, '0/2:1', '{"id":1}');
  delivery.commit(300, 250, 8, 1_700_000_000_500);
  // Open transaction: not part of the next batch.
  change(delivery, b + OP_TALLY.c, '0/3:1', '{"id":9}');
  await delivery.drain();
  const first = batches(events);
  assert.equal(first.length, 1);
  const one = first[0] as BatchWritten;
  assert.equal(one.events, 5);
  assert.deepEqual(
    [...one.counts].sort((x, y) => `${x.table}${x.op}`.localeCompare(`${y.table}${y.op}`)),
    [
      { table: '', op: 'other', count: 1 },
      { table: 'public.a', op: 'c', count: 2 },
      { table: 'public.a', op: 'u', count: 1 },
      { table: 'public.b', op: 'd', count: 1 },
    ],
  );
  assert.equal(one.firstCommitAt, 1_700_000_000_000);
  assert.equal(one.lastCommitAt, 1_700_000_000_500);
  assert.ok(one.bytes > 0 && one.writeMs >= 0);
  assert.equal(one.sample.length, 5);
  const last = one.sample.at(-1);
  assert.deepEqual(
    { table: last?.table, op: last?.op, id: last?.id, lsn: last?.lsn, key: last?.key, commitAt: last?.commitAt },
    { table: 'public.a', op: 'u', id: '0/2:1', lsn: '0/2', key: '{"id":1}', commitAt: 1_700_000_000_500 },
  );
  assert.equal(one.sample.at(-2)?.op, 'other');
  assert.equal(one.sample.at(-2)?.key, 'null');
  const stored = events.find((e) => e.type === 'checkpoint-stored');
  assert.ok(stored?.type === 'checkpoint-stored');
  assert.equal(stored.lastCommitAt, 1_700_000_000_500);
  assert.equal(stored.events, 5);
  assert.ok(stored.durationMs !== undefined && stored.durationMs >= 0);

  // The open transaction commits: its event was moved to the front with its tally.
  change(delivery, b + OP_TALLY.c, '0/3:2', '{"id":10}');
  delivery.commit(400, 350, 9, 1_700_000_001_000);
  await delivery.drain();
  const two = batches(events)[1] as BatchWritten;
  assert.deepEqual(two.counts, [{ table: 'public.b', op: 'c', count: 2 }]);
  assert.equal(two.firstCommitAt, 1_700_000_001_000);
  assert.deepEqual(
    two.sample.map((s) => s.key),
    ['{"id":9}', '{"id":10}'],
  );
  // The whole line only when asked for.
  assert.match(two.sample[0]?.line() ?? '', /"secret"/);
});

test('many events and many tables: the tallies grow and still add up', async () => {
  const { delivery, events } = setup();
  const bases = Array.from({ length: 40 }, (_, i) => delivery.tallyBase(`public.t${i}`));
  let n = 0;
  for (let tx = 0; tx < 30; tx++) {
    for (let i = 0; i < 300; i++)
      change(delivery, (bases[(tx + i) % 40] as number) + OP_TALLY.c, `0/${tx}:${i}`, `${++n}`);
    delivery.commit(1000 + tx, 900 + tx, tx, 1_700_000_000_000 + tx);
    if (tx % 7 === 0) await delivery.drain();
  }
  await delivery.drain();
  const written = batches(events);
  const total = written.reduce((sum, b) => sum + b.counts.reduce((s, c) => s + c.count, 0), 0);
  assert.equal(total, 9000);
  assert.equal(
    written.reduce((sum, b) => sum + b.events, 0),
    9000,
  );
  for (const b of written)
    assert.equal(
      b.counts.reduce((s, c) => s + c.count, 0),
      b.events,
    );
});

test('an incremental snapshot reports its progress per table once a chunk is stored', async () => {
  const { delivery, events } = setup();
  const table = (name: string, read: number, done: boolean) => ({
    schema: 'public',
    table: name,
    cursor: { kind: 'key' as const, done, after: null },
    read,
    emitted: read,
  });
  delivery.setResumeState({
    incremental: { id: '0/1:i1', seq: 1, requests: [], tables: [table('a', 1024, false), table('b', 0, false)] },
  });
  delivery.commit(200);
  await delivery.drain();
  const progress = events.filter((e) => e.type === 'snapshot-progress');
  assert.deepEqual(progress, [
    { type: 'snapshot-progress', table: 'public.a', rows: 1024, total: undefined, done: false },
    { type: 'snapshot-progress', table: 'public.b', rows: 0, total: undefined, done: false },
  ]);
  // Nothing changed: no new report with the next checkpoint.
  delivery.commit(300);
  await delivery.drain();
  assert.equal(events.filter((e) => e.type === 'snapshot-progress').length, 2);
});
