/**
 * The acknowledgement rule, checked against an in-memory sink and offset store (the database is
 * not involved here; the integration tests cover the same rule against a real server).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Delivery } from '../../../src/pipeline/delivery.ts';
import { CdcError, type CdcError as CdcErrorType } from '../../../src/core/errors.ts';
import type { Checkpoint, OffsetStore } from '../../../src/offsets/store.ts';
import type { EventBatch, Sink, SinkPosition } from '../../../src/sinks/contract.ts';

class MemorySink implements Sink {
  readonly kind = 'memory';
  /** The ids of every event written, in order. */
  written: string[] = [];
  gate: Promise<void> = Promise.resolve();
  fail = false;
  open(): Promise<void> {
    return Promise.resolve();
  }
  async write(batch: EventBatch): Promise<SinkPosition> {
    await this.gate;
    if (this.fail) throw new CdcError('SINK_FAILED', 'disk full');
    for (let i = 0; i < batch.count; i++) this.written.push(batch.id(i));
    return { count: this.written.length };
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

class MemoryOffsets implements OffsetStore {
  stored: Checkpoint[] = [];
  gate: Promise<void> = Promise.resolve();
  /** Commits called (stored or waiting at the gate). */
  started = 0;
  load(): Promise<Checkpoint | undefined> {
    return Promise.resolve(this.stored.at(-1));
  }
  async commit(checkpoint: Checkpoint): Promise<void> {
    this.started++;
    await this.gate;
    this.stored.push(checkpoint);
  }
  replace(checkpoint: Checkpoint): Promise<void> {
    return this.commit(checkpoint);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

const identity = { systemId: '1', timeline: 1, database: 'd', slot: 's', publication: 'p' };

function setup(maxEvents = 10, sink = new MemorySink()) {
  const offsets = new MemoryOffsets();
  const failures: CdcErrorType[] = [];
  const pressure: boolean[] = [];
  // What the stream loop's scheduler does with Delivery (scheduler.ts), without the rest of the loop.
  const step = (): void => {
    if (delivery.checkpointReady) delivery.storeCheckpoint();
    else if (delivery.batchDueAt <= Date.now()) delivery.writeBatch();
  };
  const delivery: Delivery = new Delivery(
    sink,
    offsets,
    identity,
    { lsn: 100, position: {} },
    { maxEvents, maxDelayMs: 1 },
    {
      pressure: (high) => pressure.push(high),
      failed: (e) => failures.push(e),
      stored: () => undefined,
      ready: () => setImmediate(step),
    },
  );
  return { sink, offsets, delivery, failures, pressure };
}

const line = (n: number): string => `{"id":"0/1:${n}","n":${n}}`;

test('acked moves only to the commit end LSN of durable, checkpointed transactions', async () => {
  const { sink, offsets, delivery } = setup();
  let release!: () => void;
  sink.gate = new Promise((resolve) => (release = resolve));
  delivery.event(0, line(1));
  delivery.commit(200);
  delivery.event(0, line(2)); // an open transaction: must never be acknowledged
  const draining = delivery.drain();
  assert.equal(delivery.acked, 100, 'nothing is acknowledged before the sink write resolves');
  release();
  await draining;
  assert.equal(delivery.acked, 200);
  assert.deepEqual(sink.written, ['0/1:1'], 'the open transaction was not written with the committed batch');
  assert.equal(offsets.stored.at(-1)?.lsn, '0/C8');
  assert.deepEqual(offsets.stored.at(-1)?.sink, { count: 1 });
});

test('idle: the keepalive position is confirmed only when nothing is in flight', async () => {
  const { offsets, delivery } = setup();
  await delivery.confirmIdle(500, true);
  assert.equal(delivery.acked, 100, 'an open transaction blocks the idle confirmation');
  delivery.event(0, line(1));
  await delivery.confirmIdle(500, false);
  assert.equal(delivery.acked, 100, 'buffered events block it too');
  delivery.commit(300);
  await delivery.drain();
  await delivery.confirmIdle(500, false);
  assert.equal(delivery.acked, 500);
  assert.equal(
    offsets.stored.at(-1)?.lsn,
    '0/1F4',
    'the checkpoint moves with it, so a restart never sees the slot ahead of the offset',
  );
});

test('a failed sink write stops acknowledgement for good', async () => {
  const { sink, delivery, failures, offsets } = setup();
  sink.fail = true;
  delivery.event(0, line(1));
  delivery.commit(200);
  await delivery.drain();
  assert.equal(failures.length, 1);
  assert.equal(delivery.acked, 100);
  assert.equal(offsets.stored.length, 0);
});

test('a huge transaction is written in parts but checkpointed only at its commit', async () => {
  const { sink, offsets, delivery, pressure } = setup(10);
  let release!: () => void;
  sink.gate = new Promise((resolve) => (release = resolve));
  // The first 20 go to a (slow) sink write; the next 45 pile up behind it.
  for (let i = 0; i < 65; i++) delivery.event(0, line(i));
  assert.deepEqual(pressure, [true], 'buffer passed the high-water mark while the sink was slow');
  release();
  await eventuallyWritten(sink, 40);
  assert.equal(offsets.stored.length, 0, 'no checkpoint in the middle of a transaction');
  delivery.commit(900);
  await delivery.drain();
  assert.equal(sink.written.length, 65);
  assert.equal(offsets.stored.at(-1)?.lsn, '0/384');
  assert.equal(pressure.at(-1), false);
});

async function eventuallyWritten(sink: MemorySink, count: number): Promise<void> {
  while (sink.written.length < count) await new Promise<void>((resolve) => setImmediate(resolve));
}

async function eventually(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise<void>((resolve) => setImmediate(resolve));
}

test('batches are written while a checkpoint is stored; acked follows stored checkpoints only', async () => {
  const { sink, offsets, delivery } = setup();
  let release!: () => void;
  offsets.gate = new Promise((resolve) => (release = resolve));
  // What the scheduler would do once each batch is due (the test's `step` runs only after an operation ends).
  const cut = (lsn: number, n: number): void => {
    delivery.event(0, line(n));
    delivery.commit(lsn);
    delivery.writeBatch();
  };
  cut(200, 1);
  await eventually(() => offsets.started === 1);
  // The checkpoint at 200 is being stored (held): the next transactions are written meanwhile.
  cut(300, 2);
  await eventuallyWritten(sink, 2);
  cut(400, 3);
  await eventuallyWritten(sink, 3);
  assert.equal(delivery.acked, 100, 'durable in the sink is not enough: the checkpoint is not stored yet');
  assert.equal(offsets.started, 1, 'one checkpoint store at a time');
  release();
  await delivery.drain();
  assert.equal(delivery.acked, 400);
  assert.deepEqual(
    offsets.stored.map((c) => [c.lsn, c.sink]),
    [
      ['0/C8', { count: 1 }],
      ['0/190', { count: 3 }],
    ],
    'the batches made durable during a store are covered by one checkpoint, with the position after them',
  );
  assert.equal(delivery.delivered, 3);
});

test('a sink that stores checkpoints itself is not written while a checkpoint is stored', async () => {
  class CheckpointingSink extends MemorySink {
    readonly checkpoints = { where: 'memory', load: () => Promise.resolve(undefined), store: () => Promise.resolve() };
  }
  const sink = new CheckpointingSink();
  const { offsets, delivery } = setup(10, sink);
  let release!: () => void;
  offsets.gate = new Promise((resolve) => (release = resolve));
  delivery.event(0, line(1));
  delivery.commit(200);
  delivery.writeBatch();
  await eventually(() => offsets.started === 1);
  delivery.event(0, line(2));
  delivery.commit(300);
  delivery.writeBatch();
  // Its store commits what the writes before it sent (Kafka exactly-once): a write now would land in it.
  for (let i = 0; i < 20; i++) await new Promise<void>((resolve) => setImmediate(resolve));
  assert.deepEqual(sink.written, ['0/1:1']);
  release();
  await delivery.drain();
  assert.deepEqual(sink.written, ['0/1:1', '0/1:2']);
  assert.equal(delivery.acked, 300);
});

test(
  'every checkpoint names the last delivered commit; ' + 'an idle move and a non-transactional message keep it',
  async () => {
    const { offsets, delivery } = setup();
    delivery.event(0, line(1));
    delivery.commit(0x200, 0x1f0, 755);
    await delivery.drain();
    const identity = { commitLsn: '0/1F0', endLsn: '0/200', xid: 755 };
    assert.deepEqual(offsets.stored.at(-1)?.lastCommit, identity);
    await delivery.confirmIdle(0x500, false);
    assert.equal(offsets.stored.at(-1)?.lsn, '0/500');
    assert.deepEqual(offsets.stored.at(-1)?.lastCommit, identity, 'moved over idle WAL: the last commit before it');
    delivery.event(0, line(2));
    delivery.commit(0x601); // a message between transactions: no transaction of its own
    await delivery.drain();
    assert.equal(offsets.stored.at(-1)?.lsn, '0/601');
    assert.deepEqual(offsets.stored.at(-1)?.lastCommit, identity);
    delivery.commit(0x700, 0x6f0, 756);
    await delivery.drain();
    assert.deepEqual(offsets.stored.at(-1)?.lastCommit, { commitLsn: '0/6F0', endLsn: '0/700', xid: 756 });
  },
);
