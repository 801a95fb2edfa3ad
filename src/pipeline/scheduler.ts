/**
 * The stream loop's scheduler: the one place that decides what the loop does next. Pure: it reads a
 * `LoopState` (flags and deadlines the loop keeps up to date) and the clock, and names one action; the loop
 * performs it and asks again, until the answer is `wait`. Then the loop sleeps until `nextDeadline` or until
 * something it waits for happens (a frame arrives, a sink write or a checkpoint store completes, a catalog
 * lookup returns).
 *
 * Priorities, highest first, and why:
 * 1. `reply`: answer a keepalive that asks for a reply. The walsender drops the connection when it hears nothing
 *    for wal_sender_timeout, and it asks because that time is running out; the answer costs one small write.
 * 2. `status`: send a standby status update, when one is wanted (a checkpoint was stored, so the slot's
 *    confirmed_flush_lsn can follow the durable position now and the server can recycle WAL; or a snapshot window
 *    needs a keepalive) or when the status interval passed (the walsender must hear from us in time).
 * 3. `checkpoint`: store the checkpoint of a batch the sink made durable. Until it is stored, nothing it holds
 *    may be acknowledged, and a restart would deliver it again.
 * 4. `batch`: cut the committed events into a batch and start writing it to the sink (when the batch is full, its
 *    delay passed, or an open transaction grew too big to buffer). Before reading on, so memory stays bounded.
 * 5. `heartbeat`: write the heartbeat and move the checkpoint over idle WAL (pipeline/heartbeat.ts), every
 *    heartbeat interval.
 * 6. `snapshot`: at a transaction boundary, let `pgcdc snapshot` requests and read-only snapshot windows take
 *    effect (they need a position between transactions).
 * 7. `frame`: process the next frame the server sent. Last, so that nothing above ever waits behind a stream of
 *    frames: the loop reads only when it has nothing more urgent to do.
 *
 * Sink writes and checkpoint stores run in the background, one write and one store at a time, side by side
 * (Delivery pipelines them, see delivery.ts): `batch` and `checkpoint` start them,
 * and the loop keeps reading frames meanwhile (Delivery's high-water mark pauses reading when the sink is
 * behind). The acknowledgement rule is Delivery's: a status update reports `acked`, the commit end of the last
 * transaction that is durable in the sink with its checkpoint stored.
 */

/** What the loop does next (see the module doc for the order). */
export type LoopAction = 'reply' | 'status' | 'checkpoint' | 'batch' | 'heartbeat' | 'snapshot' | 'frame' | 'wait';

/** What the scheduler decides on. Times are `Date.now()` milliseconds; `Infinity` means never. */
export interface LoopState {
  /** A keepalive asked for a reply and none was sent since. */
  replyPending: boolean;
  /** A status update is wanted now: a checkpoint was stored, the start was verified, or a keepalive is wanted. */
  statusWanted: boolean;
  /** When the next status update is due by the interval. */
  statusDueAt: number;
  /** A batch is durable in the sink and its checkpoint waits to be stored (Delivery.checkpointReady). */
  checkpointReady: boolean;
  /** When the next batch must be cut (Delivery.batchDueAt). */
  batchDueAt: number;
  /** When the next heartbeat is due (`Infinity` when heartbeats are off or one is running). */
  heartbeatDueAt: number;
  /** Snapshot requests or read-only windows wait for a transaction boundary. */
  snapshotWorkDue: boolean;
  /** Between transactions, with no catalog lookup pending. */
  atBoundary: boolean;
  /** Frames received and not yet processed. */
  framesWaiting: boolean;
  /** Frames may be processed: no catalog lookup, start check or streamed-transaction replay holds them. */
  reading: boolean;
}

/** A state with nothing to do, for a loop that has not started (and for tests). */
export function idleState(): LoopState {
  return {
    replyPending: false,
    statusWanted: false,
    statusDueAt: Infinity,
    checkpointReady: false,
    batchDueAt: Infinity,
    heartbeatDueAt: Infinity,
    snapshotWorkDue: false,
    atBoundary: true,
    framesWaiting: false,
    reading: true,
  };
}

/** The next action: the first in priority order whose condition holds (module doc). Allocates nothing. */
export function nextAction(state: LoopState, now: number): LoopAction {
  if (state.replyPending) return 'reply';
  if (state.statusWanted || now >= state.statusDueAt) return 'status';
  if (state.checkpointReady) return 'checkpoint';
  if (now >= state.batchDueAt) return 'batch';
  if (now >= state.heartbeatDueAt) return 'heartbeat';
  if (state.snapshotWorkDue && state.atBoundary) return 'snapshot';
  if (state.framesWaiting && state.reading) return 'frame';
  return 'wait';
}

/** When the loop must look again even if nothing happens: the earliest deadline (`Infinity`: none). */
export function nextDeadline(state: LoopState): number {
  return Math.min(state.statusDueAt, state.batchDueAt, state.heartbeatDueAt);
}

/**
 * The status update interval: the configured one, but within a third of wal_sender_timeout (as the walsender
 * itself assumes of its clients), and never under 100 ms. A timeout of 0 (disabled) leaves the configured one.
 */
export function statusInterval(configuredMs: number, walSenderTimeoutMs: number): number {
  if (walSenderTimeoutMs <= 0) return configuredMs;
  return Math.min(configuredMs, Math.max(100, Math.floor(walSenderTimeoutMs / 3)));
}
