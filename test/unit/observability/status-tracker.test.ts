/**
 * The engine's events folded into a status snapshot, and fanned out by the bus, without a server.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { EngineEvent } from '../../../src/core/engine-events.ts';
import { EngineEventBus } from '../../../src/observability/event-bus.ts';
import { StatusTracker } from '../../../src/observability/status-tracker.ts';

/** A clock the test moves by hand. */
function clock(start: number): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

test('a new tracker is starting, with nothing received, delivered or retried', () => {
  const time = clock(Date.UTC(2026, 0, 1));
  const status = new StatusTracker(time.now).status();
  assert.equal(status.state, 'starting');
  assert.equal(status.startedAt, '2026-01-01T00:00:00.000Z');
  assert.equal(status.lastEventAt, undefined);
  assert.equal(status.ackedLsn, undefined);
  assert.equal(status.receivedLsn, undefined);
  assert.equal(status.checkpointLsn, undefined);
  assert.equal(status.eventsDelivered, 0);
  assert.equal(status.retries, 0);
  assert.equal(status.lastFault, undefined);
  assert.deepEqual(status.snapshot, []);
});

test('state changes, status updates and checkpoints show in the status', () => {
  const time = clock(Date.UTC(2026, 0, 1));
  const tracker = new StatusTracker(time.now);
  tracker.emit({ type: 'state', state: 'starting' });
  tracker.emit({ type: 'state', state: 'streaming' });
  time.advance(1500);
  tracker.emit({ type: 'status-sent', acked: '0/10', received: '0/20', delivered: 3 });
  tracker.emit({ type: 'checkpoint-stored', lsn: '0/18', events: 5 });
  const status = tracker.status();
  assert.equal(status.state, 'streaming');
  assert.equal(status.ackedLsn, '0/10');
  assert.equal(status.receivedLsn, '0/20');
  assert.equal(status.checkpointLsn, '0/18');
  assert.equal(status.eventsDelivered, 5, 'the checkpoint counted more than the last status update');
  assert.equal(status.lastEventAt, '2026-01-01T00:00:01.500Z');
});

test('faults and retries are counted, and delivered events add up over in-process restarts', () => {
  const tracker = new StatusTracker();
  const events: EngineEvent[] = [
    { type: 'state', state: 'starting' },
    { type: 'state', state: 'streaming' },
    { type: 'status-sent', acked: '0/10', received: '0/10', delivered: 7 },
    { type: 'fault', code: 'CONNECTION_LOST', message: 'the replication connection closed' },
    { type: 'state', state: 'stopped' },
    { type: 'retry-scheduled', attempt: 1, delayMs: 500, cause: 'CONNECTION_LOST' },
  ];
  for (const event of events) tracker.emit(event);
  let status = tracker.status();
  assert.equal(status.state, 'retrying');
  assert.equal(status.retries, 1);
  assert.equal(status.nextRetryDelayMs, 500);
  assert.equal(status.lastFault?.code, 'CONNECTION_LOST');
  assert.equal(status.lastFault?.message, 'the replication connection closed');
  assert.equal(status.eventsDelivered, 7);

  // The next attempt counts its own deliveries from 0 again.
  tracker.emit({ type: 'state', state: 'starting' });
  tracker.emit({ type: 'state', state: 'streaming' });
  tracker.emit({ type: 'status-sent', acked: '0/30', received: '0/40', delivered: 4 });
  status = tracker.status();
  assert.equal(status.state, 'streaming');
  assert.equal(status.nextRetryDelayMs, undefined);
  assert.equal(status.eventsDelivered, 11);
  assert.equal(status.ackedLsn, '0/30');
  assert.equal(status.retries, 1);
});

test('snapshot progress is kept per table, in first-reported order, the latest figures winning', () => {
  const tracker = new StatusTracker();
  tracker.emit({ type: 'state', state: 'snapshotting' });
  tracker.emit({ type: 'snapshot-progress', table: 'public.b', rows: 10, total: 100, done: false });
  tracker.emit({ type: 'snapshot-progress', table: 'public.a', rows: 0, total: undefined, done: false });
  tracker.emit({ type: 'snapshot-progress', table: 'public.b', rows: 100, total: 100, done: true });
  const status = tracker.status();
  assert.equal(status.state, 'snapshotting');
  assert.deepEqual(status.snapshot, [
    { table: 'public.b', rows: 100, total: 100, done: true },
    { table: 'public.a', rows: 0, total: undefined, done: false },
  ]);
});

test('a status is a copy: later events do not change it', () => {
  const tracker = new StatusTracker();
  tracker.emit({ type: 'snapshot-progress', table: 'public.a', rows: 1, total: 2, done: false });
  const before = tracker.status();
  tracker.emit({ type: 'snapshot-progress', table: 'public.c', rows: 1, total: 2, done: false });
  tracker.emit({ type: 'state', state: 'stopping' });
  assert.equal(before.snapshot.length, 1);
  assert.equal(before.state, 'starting');
});

test('the bus reaches every listener in order, survives a throwing one, and unsubscribes', () => {
  const errors: unknown[] = [];
  const bus = new EngineEventBus((error) => errors.push(error));
  const heard: string[] = [];
  bus.subscribe(() => {
    throw new Error('listener failed');
  });
  const unsubscribe = bus.subscribe((event) => heard.push(`first ${event.type}`));
  const tracker = new StatusTracker();
  bus.subscribe((event) => tracker.emit(event));
  bus.emit({ type: 'state', state: 'streaming' });
  unsubscribe();
  bus.emit({ type: 'status-sent', acked: '0/1', received: '0/2', delivered: 1 });
  assert.deepEqual(heard, ['first state']);
  assert.equal(errors.length, 2, 'the throwing listener was reported for both events');
  assert.equal(tracker.status().state, 'streaming');
  assert.equal(tracker.status().receivedLsn, '0/2');
});

test('the bus never throws, even when its error handler does', () => {
  const bus = new EngineEventBus(() => {
    throw new Error('handler failed');
  });
  bus.subscribe(() => {
    throw new Error('listener failed');
  });
  assert.doesNotThrow(() => bus.emit({ type: 'state', state: 'stopped' }));
});
