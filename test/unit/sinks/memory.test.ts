/**
 * The test doubles themselves (test/harness/memory-sink.ts, memory-offsets.ts): their fault
 * injection behaves as documented. The sink's contract is checked by the conformance suite
 * (memory-conformance.test.ts).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CdcError } from '../../../src/core/errors.ts';
import { EventBatch } from '../../../src/sinks/batch.ts';
import type { Checkpoint } from '../../../src/offsets/store.ts';
import { MemorySink, MemorySinkStore } from '../../harness/memory-sink.ts';
import { MemoryOffsetStore } from '../../harness/memory-offsets.ts';

const batch = (...ns: number[]): EventBatch =>
  EventBatch.of(ns.map((n) => ({ topic: n % 2 === 0 ? 'even' : 'odd', line: `{"id":"0/1:${n}"}` })));

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => error instanceof CdcError && error.code === code);
}

function checkpoint(lsn: string): Checkpoint {
  return {
    version: 2,
    systemId: '1',
    timeline: 1,
    database: 'd',
    slot: 's',
    publication: 'p',
    lsn,
    sink: { events: 0 },
    updatedAt: new Date(0).toISOString(),
  };
}

void describe('MemorySink', () => {
  void it('keeps events in order across topics and restarts from a position, cutting what follows', async () => {
    const store = new MemorySinkStore();
    const first = new MemorySink({ store });
    await first.open(undefined);
    const p1 = await first.write(batch(1, 2));
    await first.write(batch(3));
    store.tear('odd');
    await first.close();
    assert.deepEqual(store.ids(), ['0/1:1', '0/1:2', '0/1:3']);
    assert.deepEqual(store.linesOf('odd'), ['{"id":"0/1:1"}', '{"id":"0/1:3"}']);

    const second = new MemorySink({ store });
    await second.open(p1);
    assert.deepEqual(store.ids(), ['0/1:1', '0/1:2']);
    assert.equal(store.tornTail, undefined);
    assert.deepEqual(await second.write(batch(3)), { events: 3 });
    await second.close();
    await rejectsWith(new MemorySink({ store }).open(undefined), 'CONFIG_INVALID');
    await rejectsWith(new MemorySink({ store }).open({ events: 9 }), 'SINK_FAILED');
  });

  void it('an undone failure rejects the queued writes too, then accepts a retry', async () => {
    const sink = new MemorySink();
    await sink.open(undefined);
    sink.failNext();
    const failed = sink.write(batch(1));
    const queued = sink.write(batch(2));
    await rejectsWith(failed, 'SINK_FAILED');
    await rejectsWith(queued, 'SINK_FAILED');
    assert.deepEqual(await sink.write(batch(1, 2)), { events: 2 });
    await sink.close();
  });

  void it('a torn failure leaves part of the batch past the position and refuses every later write', async () => {
    const sink = new MemorySink();
    await sink.open(undefined);
    const before = await sink.write(batch(1));
    sink.failNext({ mode: 'torn' });
    await rejectsWith(sink.write(batch(2, 3)), 'SINK_FAILED');
    await rejectsWith(sink.write(batch(4)), 'SINK_FAILED');
    assert.deepEqual(sink.acknowledged, [before]);
    assert.deepEqual(sink.ids, ['0/1:1', '0/1:2']);
    await sink.close();
  });

  void it('a stall holds writes until released; close rejects a stalled write', async () => {
    const sink = new MemorySink();
    await sink.open(undefined);
    const stall = sink.stallWrites();
    const held = sink.write(batch(1));
    await stall.reached;
    assert.deepEqual(sink.ids, []);
    stall.release();
    await held;
    const again = sink.stallWrites();
    const stalled = sink.write(batch(2));
    await again.reached;
    await sink.close();
    await rejectsWith(stalled, 'SINK_FAILED');
    await rejectsWith(sink.write(batch(3)), 'INTERNAL');
    assert.deepEqual(sink.ids, ['0/1:1']);
  });

  void it('waitForEvents resolves once enough events are durable', async () => {
    const sink = new MemorySink();
    await sink.open(undefined);
    const waiting = sink.store.waitForEvents(3);
    await sink.write(batch(1, 2));
    await sink.write(batch(3));
    await waiting;
    await sink.close();
  });
});

void describe('MemoryOffsetStore', () => {
  void it('stores copies, refuses to move back unless replacing, and refuses use after close', async () => {
    const offsets = new MemoryOffsetStore();
    assert.equal(await offsets.load(), undefined);
    const cp = checkpoint('0/20');
    await offsets.commit(cp);
    (cp as { lsn: string }).lsn = '0/99';
    assert.equal((await offsets.load())?.lsn, '0/20');
    await rejectsWith(offsets.commit(checkpoint('0/10')), 'INTERNAL');
    await offsets.commit(checkpoint('0/20'));
    await offsets.replace(checkpoint('0/10'));
    assert.deepEqual(
      offsets.history.map((c) => c.lsn),
      ['0/20', '0/20', '0/10'],
    );
    const restarted = new MemoryOffsetStore(offsets.stored);
    assert.equal((await restarted.load())?.lsn, '0/10');
    await offsets.close();
    await offsets.close();
    await rejectsWith(offsets.load(), 'INTERNAL');
  });

  void it('injected failures store nothing; stalls hold commits; waitFor sees a stored checkpoint', async () => {
    const offsets = new MemoryOffsetStore();
    offsets.failNext();
    await rejectsWith(offsets.commit(checkpoint('0/1')), 'LOCAL_IO');
    assert.equal(offsets.stored, undefined);
    const stall = offsets.stallCommits();
    const seen = offsets.waitFor((c) => c.lsn === '0/2');
    const held = offsets.commit(checkpoint('0/2'));
    await stall.reached;
    assert.equal(offsets.stored, undefined);
    stall.release();
    await held;
    assert.equal((await seen).lsn, '0/2');
    await offsets.close();
  });
});
