/**
 * The stream loop's scheduler (src/pipeline/scheduler.ts): its order of priority, its deadline and the status
 * interval, as pure functions.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  idleState,
  nextAction,
  nextDeadline,
  statusInterval,
  type LoopAction,
  type LoopState,
} from '../../../src/pipeline/scheduler.ts';

const NOW = 1_000_000;

/** A state where every action is due at once. */
function everythingDue(): LoopState {
  return {
    replyPending: true,
    statusWanted: true,
    statusDueAt: NOW,
    checkpointReady: true,
    batchDueAt: NOW,
    heartbeatDueAt: NOW,
    snapshotWorkDue: true,
    atBoundary: true,
    framesWaiting: true,
    reading: true,
  };
}

test('the actions come in the documented order of priority', () => {
  const state = everythingDue();
  const order: LoopAction[] = [];
  // Perform each action as the loop would, by clearing its reason, and ask again.
  for (;;) {
    const action = nextAction(state, NOW);
    order.push(action);
    if (action === 'wait') break;
    if (action === 'reply') state.replyPending = false;
    else if (action === 'status') {
      state.statusWanted = false;
      state.statusDueAt = NOW + 1000;
    } else if (action === 'checkpoint') state.checkpointReady = false;
    else if (action === 'batch') state.batchDueAt = Infinity;
    else if (action === 'heartbeat') state.heartbeatDueAt = NOW + 1000;
    else if (action === 'snapshot') state.snapshotWorkDue = false;
    else state.framesWaiting = false;
  }
  assert.deepEqual(order, ['reply', 'status', 'checkpoint', 'batch', 'heartbeat', 'snapshot', 'frame', 'wait']);
});

test('a keepalive asking for a reply goes before a waiting frame, even while frames are held', () => {
  const state = { ...idleState(), framesWaiting: true, replyPending: true, reading: false, statusDueAt: NOW + 1 };
  assert.equal(nextAction(state, NOW), 'reply');
  state.replyPending = false;
  assert.equal(nextAction(state, NOW), 'wait', 'held frames are not read');
  state.reading = true;
  assert.equal(nextAction(state, NOW), 'frame');
});

test('a stored checkpoint makes a status update due at once, not at the interval', () => {
  const state = { ...idleState(), statusDueAt: NOW + 5000, framesWaiting: true };
  assert.equal(nextAction(state, NOW), 'frame');
  state.statusWanted = true;
  assert.equal(nextAction(state, NOW), 'status');
});

test('deadlines: status at its interval, a batch at its delay, a heartbeat at its time', () => {
  const state = { ...idleState(), statusDueAt: NOW + 500, batchDueAt: NOW + 100, heartbeatDueAt: NOW + 900 };
  assert.equal(nextAction(state, NOW), 'wait');
  assert.equal(nextDeadline(state), NOW + 100);
  assert.equal(nextAction(state, NOW + 100), 'batch');
  state.batchDueAt = Infinity;
  assert.equal(nextDeadline(state), NOW + 500);
  assert.equal(nextAction(state, NOW + 500), 'status');
  assert.equal(nextDeadline(idleState()), Infinity, 'nothing to wait for: no timer');
});

test('snapshot requests wait for a transaction boundary', () => {
  const state = { ...idleState(), statusDueAt: NOW + 1, snapshotWorkDue: true, atBoundary: false };
  assert.equal(nextAction(state, NOW), 'wait');
  state.atBoundary = true;
  assert.equal(nextAction(state, NOW), 'snapshot');
});

test('the status interval stays within a third of wal_sender_timeout, and at least 100 ms', () => {
  assert.equal(statusInterval(10_000, 60_000), 10_000);
  assert.equal(statusInterval(10_000, 6_000), 2_000);
  assert.equal(statusInterval(10_000, 150), 100);
  assert.equal(statusInterval(10_000, 0), 10_000, 'a disabled timeout leaves the configured interval');
});
