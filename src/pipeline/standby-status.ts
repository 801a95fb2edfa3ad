/**
 * The standby status updates of a stream loop: what they report and when they ask for a reply. An update
 * reports `received` as written and the flush LSN as flushed and applied: Delivery's `acked` (only a position
 * whose events are durable with their checkpoint stored), but nothing past where the stream asked to start
 * until the start (start-check.ts) and the replayed history (history-check.ts) are verified, so a refused
 * start leaves the slot where it was.
 *
 * Separate from the stream loop (stream-loop.ts), which decides when an update leaves (the scheduler's `reply`
 * and `status` actions, a clean stop) and moves frames along: this file owns what may be confirmed to
 * PostgreSQL, the one place the acknowledgement rule reaches the server.
 */
import { formatLsn } from '../protocol/lsn.ts';
import type { Lsn } from '../protocol/messages.ts';
import type { WindowTracker } from '../snapshot/window-tracker.ts';
import type { Delivery } from './delivery.ts';
import type { HistoryCheck } from './history-check.ts';
import type { FrameStream, LoopDeps } from './loop-ports.ts';
import { statusInterval, type LoopState } from './scheduler.ts';

export class StandbyStatus {
  /** How long an update may wait at most (scheduler.ts, `statusInterval`: well within wal_sender_timeout). */
  readonly intervalMs: number;
  private readonly replayFrom: Lsn;
  private readonly onStatusSent: LoopDeps['onStatusSent'];
  /** The loop's scheduler state: an update clears `replyPending` and `statusWanted` and moves `statusDueAt`. */
  private readonly state: LoopState;
  private readonly delivery: Delivery;
  private readonly windows: WindowTracker;
  /** The highest XLogData start received, reported as written. */
  private received: Lsn;
  /** A snapshot window waits for the stream to pass a position: the next update asks for a keepalive. */
  private keepaliveWanted = false;
  /** The slot was read again once streaming and starts where expected (start-check.ts). */
  private startVerified = false;
  /** Watches the replay up to the stored offset; undefined when there is none. */
  private history: HistoryCheck | undefined;

  constructor(deps: LoopDeps, state: LoopState, delivery: Delivery, windows: WindowTracker) {
    this.intervalMs = statusInterval(deps.config.statusIntervalMs, deps.facts.walSenderTimeoutMs);
    this.replayFrom = deps.replayFrom;
    this.onStatusSent = deps.onStatusSent;
    this.received = deps.startLsn;
    this.state = state;
    this.delivery = delivery;
    this.windows = windows;
  }

  /** A frame that starts at `walStart` arrived (once per XLogData frame). */
  receive(walStart: Lsn): void {
    if (walStart > this.received) this.received = walStart;
  }

  /** The start was verified; `history` (if any) watches the replay up to the stored offset. An update is wanted. */
  started(history: HistoryCheck | undefined): void {
    this.history = history;
    this.startVerified = true;
    this.state.statusWanted = true;
  }

  /** The start and the replayed history are verified: the checkpoint may move past where the stream started. */
  get verified(): boolean {
    return this.startVerified && (this.history === undefined || this.history.verified);
  }

  /** The flush LSN sent to PostgreSQL (see the module doc). */
  private get flushLsn(): Lsn {
    return this.verified ? this.delivery.acked : Math.min(this.delivery.acked, this.replayFrom);
  }

  /** A keepalive between transactions: the replayed history may end there (history-check.ts). */
  keepalive(walEnd: Lsn): void {
    this.history?.keepalive(walEnd);
  }

  /** The next update asks the server for a reply (a keepalive): snapshot windows and the receive probe. */
  askKeepalive(): void {
    this.keepaliveWanted = this.state.statusWanted = true;
  }

  /** Sends an update on `stream` (none before the stream started) and schedules the next one by the interval. */
  send(stream: FrameStream | undefined, now: number): void {
    const state = this.state;
    state.replyPending = state.statusWanted = false;
    state.statusDueAt = now + this.intervalMs;
    // A read-only snapshot window waits for the stream to pass a position: ask for a keepalive.
    const ask = this.keepaliveWanted || this.windows.waitingForStream;
    this.keepaliveWanted = false;
    if (!stream) return;
    const flush = this.flushLsn;
    stream.sendStatus(this.received, flush, ask);
    this.onStatusSent?.({
      acked: formatLsn(flush),
      received: formatLsn(this.received),
      delivered: this.delivery.delivered,
    });
  }
}
