/**
 * The streaming part of a capture, from START_REPLICATION to CopyDone: CopyData frames -> pgoutput messages ->
 * events -> Delivery -> sink and checkpoint -> standby status updates.
 *
 * One scheduler (scheduler.ts) decides what happens next, in a written-down order of priority; this class keeps
 * the state it decides on, performs the action it names, and sleeps on one timer (the scheduler's next deadline)
 * or until something it waits for happens. Frames are queued on arrival and processed only when nothing more
 * urgent is due. Standby status updates leave from one place, `sendStatus`: on the interval, after each stored
 * checkpoint, in answer to a keepalive, and once at a clean stop.
 *
 * Flow control: the stream is paused while the sink is behind (Delivery's high-water mark) or while frames are
 * held (the start check, a Relation message's catalog lookup, the replay of a streamed transaction). Status
 * updates go out whatever the state of reading, so the walsender never hits wal_sender_timeout.
 */
import { CdcError, toCdcError } from '../core/errors.ts';
import { formatLsn } from '../protocol/lsn.ts';
import type { Lsn } from '../protocol/messages.ts';
import { PgoutputDecoder } from '../protocol/pgoutput.ts';
import { isReplyRequest, parseReplicationFrame } from '../protocol/replication.ts';
import { describeEndpoint } from '../postgres/connect.ts';
import type { ResumeState } from '../offsets/store.ts';
import type { PgType } from '../source/values.ts';
import type { WindowTracker } from '../snapshot/window-tracker.ts';
import type { IncrementalSnapshotter } from '../snapshot/incremental.ts';
import { pendingTables } from '../snapshot/resume-state.ts';
import type { TableName } from '../snapshot/initial-reader.ts';
import type { ChangeAssembler } from './assembler.ts';
import type { Delivery } from './delivery.ts';
import type { StreamedTransactions } from './large-transactions.ts';
import type { HistoryCheck } from './history-check.ts';
import { postgresCatalog, type FrameStream, type LoopDeps, type StreamCatalog } from './loop-ports.ts';
import type { RelationUpdates } from './relation-updates.ts';
import { buildStreamParts } from './stream-parts.ts';
import { idleState, nextAction, nextDeadline, statusInterval, type LoopAction } from './scheduler.ts';
import { FrameQueue } from './frame-queue.ts';
import { Wakeup } from './wakeup.ts';

export type { LoopDeps } from './loop-ports.ts';

/** The streaming part of a capture, from START_REPLICATION to CopyDone. */
export class StreamLoop {
  private readonly deps: LoopDeps;
  private readonly catalog: StreamCatalog;
  private readonly decoder: PgoutputDecoder;
  private readonly types = new Map<number, PgType>();
  private readonly relationUpdates: RelationUpdates;
  private readonly assembler: ChangeAssembler;
  private readonly delivery: Delivery;
  private readonly windows: WindowTracker;
  private readonly snapshotter: IncrementalSnapshotter | undefined;
  /** Protocol v2 streaming of large in-progress transactions; undefined unless `streaming` is on. */
  private readonly streamed: StreamedTransactions | undefined;
  private stream: FrameStream | undefined;
  /** What the scheduler decides on (scheduler.ts), kept current by this class. */
  private readonly state = idleState();
  private readonly statusIntervalMs: number;
  /** Frames received and not yet processed. */
  private readonly inbox = new FrameQueue();
  /** The scheduler's one timer, and its runs after something it waits for happened. */
  private readonly wakeup = new Wakeup(() => this.drive());
  private driving = false;
  /** Frames are held: the start check, a catalog lookup or a streamed transaction's replay is pending. */
  private blocked = false;
  private pressure = false;
  private paused = false;
  private stopping = false;
  private received: Lsn;
  private lastWalEnd: Lsn = 0;
  private nextBeatAt = Infinity;
  /** A snapshot window waits for the stream to pass a position: status updates ask for a keepalive. */
  private keepaliveWanted = false;
  /** The slot was read again once streaming and starts where expected (start-check.ts). */
  private startVerified = false;
  /** Watches the replay up to the stored offset; undefined when there is none. */
  private history: HistoryCheck | undefined;

  constructor(deps: LoopDeps) {
    this.deps = deps;
    this.catalog = deps.catalog ?? postgresCatalog(deps);
    this.received = deps.startLsn;
    this.statusIntervalMs = statusInterval(deps.config.statusIntervalMs, deps.facts.walSenderTimeoutMs);
    this.decoder = new PgoutputDecoder({ protoVersion: deps.config.streaming ? 2 : 1 });
    for (const [oid, type] of deps.types) this.types.set(oid, type);
    const parts = buildStreamParts(deps, this.catalog, this.types, this.decoder, {
      pressure: (high) => {
        this.pressure = high;
        this.updateFlow();
        this.streamed?.pressure(high);
      },
      failed: (error) => {
        this.halt();
        deps.onFailure(error);
      },
      stored: (checkpoint, delivered) => {
        // The slot's confirmed_flush_lsn follows the durable position now, not at the next interval.
        this.state.statusWanted = true;
        deps.onStored?.(checkpoint, delivered);
      },
      ready: () => this.wake(),
      requestKeepalive: () => this.askKeepalive(),
      snapshotsChanged: () => this.wakeSnapshotter(),
      fail: (error) => this.fail(error),
      stopped: () => this.stopping,
    });
    this.delivery = parts.delivery;
    this.windows = parts.windows;
    this.snapshotter = parts.snapshotter;
    this.assembler = parts.assembler;
    this.relationUpdates = parts.relationUpdates;
    this.streamed = parts.streamed;
  }

  start(): void {
    const stream = this.deps.session.start({
      slot: this.deps.config.slot,
      startLsn: this.deps.replayFrom,
      publication: this.deps.config.publication,
      protoVersion: this.decoder.protoVersion,
      messages: this.deps.facts.major >= 14,
      streaming: this.streamed !== undefined,
      origin: this.deps.config.origin,
    });
    this.stream = stream;
    stream.on('frame', (frame) => this.onFrame(frame));
    stream.on('error', (error) => this.fail(error));
    stream.on('keepalive-wanted', () => this.askKeepalive());
    stream.on('end', () =>
      this.fail(
        new CdcError('REPLICATION_STREAM_FAILED', 'the server ended the replication stream', { retryable: true }),
      ),
    );
    const now = Date.now();
    this.state.statusDueAt = now + this.statusIntervalMs;
    const beat = this.deps.heartbeat.interval;
    if (beat > 0) this.nextBeatAt = now + beat;
    // No frame is processed before the slot is read again (start-check.ts).
    this.hold(this.verifyStart());
    this.deps.log.info(
      {
        source: describeEndpoint(this.deps.endpoint),
        slot: this.deps.config.slot,
        publication: this.deps.config.publication,
        from: formatLsn(this.deps.startLsn),
      },
      'streaming',
    );
    this.wakeSnapshotter();
    this.drive();
  }

  private async verifyStart(): Promise<void> {
    const checked = await this.catalog.checkStart(() => this.stopping);
    if (checked === undefined) return;
    if (checked.history) this.assembler.checkHistory((this.history = checked.history));
    this.startVerified = true;
    this.state.statusWanted = true;
  }

  /**
   * The flush LSN sent to PostgreSQL: `acked`, but nothing past where the stream asked to start
   * until the start (start-check.ts) and the replayed history (history-check.ts) are verified, so
   * a refused start leaves the slot where it was.
   */
  private get flushLsn(): Lsn {
    return this.verified ? this.delivery.acked : Math.min(this.delivery.acked, this.deps.replayFrom);
  }

  private get verified(): boolean {
    return this.startVerified && (this.history === undefined || this.history.verified);
  }

  /** The incremental snapshot progress (cursors, counts) as it will be stored next. */
  get resumeState(): ResumeState {
    return this.delivery.currentResumeState;
  }

  /** A `pgcdc snapshot` request (taken at the next transaction boundary, stored with the checkpoint). */
  requestSnapshot(id: string, tables: readonly TableName[]): void {
    this.windows.request(id, tables);
    this.state.snapshotWorkDue = true;
    this.wake();
  }

  private wakeSnapshotter(): void {
    if (this.snapshotter) {
      this.snapshotter.wake();
      return;
    }
    const method = this.deps.method;
    if (typeof method !== 'string' && pendingTables(this.delivery.currentResumeState.incremental).length > 0) {
      this.deps.log.warn({ reason: method.unavailable }, 'an incremental snapshot was requested but cannot run here');
    }
  }

  /** Clean stop: stop reading, deliver committed transactions, confirm, CopyDone. */
  async stop(): Promise<void> {
    this.halt();
    await this.snapshotter?.stop();
    await this.deps.heartbeat.close();
    await this.delivery.drain();
    // Not before the replayed history is verified: the checkpoint would pass what is unchecked.
    if (this.verified) await this.delivery.confirmIdle(this.lastWalEnd, this.inFlight);
    // After the idle confirmation: an open streamed transaction must keep the confirmed LSN before it.
    this.streamed?.close();
    this.sendStatus(Date.now());
    await this.stream?.stop();
    this.deps.log.info(
      {
        acked: formatLsn(this.delivery.acked),
        delivered: this.delivery.delivered,
        skipped: this.assembler.skippedTransactions,
      },
      'stopped',
    );
  }

  /** Stop after a failure: nothing more is acknowledged. */
  async abort(): Promise<void> {
    this.halt();
    this.streamed?.close();
    void this.snapshotter?.stop();
    await this.deps.session.close();
  }

  private halt(): void {
    this.stopping = true;
    this.wakeup.close();
  }

  private fail(error: CdcError): void {
    if (this.stopping) return;
    this.halt();
    this.deps.onFailure(error);
  }

  /**
   * The one place standby status updates leave from. Reports `received` as written and `flushLsn` as flushed
   * and applied: only a position whose events are durable with their checkpoint stored (delivery.ts).
   */
  /** The next status update asks the server for a reply (a keepalive): snapshot windows and the receive probe. */
  private askKeepalive(): void {
    this.keepaliveWanted = this.state.statusWanted = true;
    this.wake();
  }

  private sendStatus(now: number): void {
    const state = this.state;
    state.replyPending = state.statusWanted = false;
    state.statusDueAt = now + this.statusIntervalMs;
    // A read-only snapshot window waits for the stream to pass a position: ask for a keepalive.
    const ask = this.keepaliveWanted || this.windows.waitingForStream;
    this.keepaliveWanted = false;
    const stream = this.stream;
    if (!stream) return;
    const flush = this.flushLsn;
    stream.sendStatus(this.received, flush, ask);
    this.deps.onStatusSent?.({
      acked: formatLsn(flush),
      received: formatLsn(this.received),
      delivered: this.delivery.delivered,
    });
  }

  /** Runs the scheduler's actions until it says wait, then arms the timer for its next deadline. */
  private drive(): void {
    if (this.driving || this.stopping) return;
    this.driving = true;
    try {
      for (;;) {
        const now = Date.now();
        const action = nextAction(this.refreshState(), now);
        if (action === 'wait') break;
        this.perform(action, now);
        if (this.stopping) return;
      }
    } catch (error) {
      this.fail(toCdcError(error));
      return;
    } finally {
      this.driving = false;
    }
    this.updateFlow();
    this.wakeup.at(nextDeadline(this.state));
  }

  private refreshState(): typeof this.state {
    const state = this.state;
    const delivery = this.delivery;
    state.checkpointReady = delivery.checkpointReady;
    state.batchDueAt = delivery.batchDueAt;
    state.heartbeatDueAt = this.deps.heartbeat.beating ? Infinity : this.nextBeatAt;
    state.atBoundary = !this.assembler.inTransaction && !this.blocked;
    state.framesWaiting = this.inbox.size > 0;
    state.reading = !this.blocked;
    return state;
  }

  private perform(action: LoopAction, now: number): void {
    switch (action) {
      case 'reply':
        this.sendStatus(now);
        return;
      case 'status': {
        const interval = now >= this.state.statusDueAt;
        this.sendStatus(now);
        if (!interval) return;
        // Every interval, between transactions: requests and read-only windows may take effect.
        this.state.snapshotWorkDue = true;
        return;
      }
      case 'checkpoint':
        this.delivery.storeCheckpoint();
        return;
      case 'batch':
        this.delivery.writeBatch();
        return;
      case 'heartbeat':
        this.nextBeatAt = now + this.deps.heartbeat.interval;
        this.deps.heartbeat.beat(
          () => this.confirmIdle(),
          (error) => this.fail(error),
        );
        return;
      case 'snapshot':
        this.state.snapshotWorkDue = false;
        this.windows.idle();
        return;
      case 'frame':
        try {
          this.process(this.inbox.shift());
        } catch (error) {
          this.fail(toCdcError(error, 'PROTOCOL_INVALID'));
        }
    }
  }

  /** Runs `drive` soon (outside the current call stack); many wakes before it runs cost one. */
  private wake(): void {
    if (!this.driving && !this.stopping) this.wakeup.soon();
  }

  /**
   * Something was received and is not yet committed: an open transaction, a pending Relation
   * lookup, or an open streamed transaction (pipeline/large-transactions.ts explains why the last one
   * keeps keepalive confirmation back too).
   */
  private get inFlight(): boolean {
    return this.assembler.inTransaction || this.blocked || (this.streamed?.open ?? false);
  }

  /** A heartbeat's confirmation: with nothing in flight, checkpoint and `acked` follow the server (heartbeat.ts). */
  private confirmIdle(): Promise<void> {
    // Not before the replayed history is verified: the checkpoint would pass what is unchecked.
    if (!this.stopping && this.verified && this.delivery.moveIdle(this.lastWalEnd, this.inFlight)) this.wake();
    return Promise.resolve();
  }

  private updateFlow(): void {
    const stream = this.stream;
    const pause = this.pressure || this.blocked;
    if (!stream || pause === this.paused) return;
    this.paused = pause;
    if (pause) stream.pause();
    else stream.resume();
  }

  private onFrame(frame: Buffer): void {
    if (this.stopping) return;
    // Looked at on arrival: the answer goes out before the next frame is processed, even while frames are held.
    if (isReplyRequest(frame)) this.state.replyPending = true;
    this.inbox.push(frame);
    this.drive();
  }

  private process(frame: Buffer): void {
    const parsed = parseReplicationFrame(frame);
    if (parsed.kind === 'keepalive') {
      // A reply it asks for was sent on arrival (onFrame, the scheduler's first priority).
      if (parsed.walEnd > this.lastWalEnd) this.lastWalEnd = parsed.walEnd;
      if (!this.assembler.inTransaction) {
        this.history?.keepalive(parsed.walEnd);
        this.windows.keepalive(parsed.walEnd);
      }
      return;
    }
    if (parsed.walStart > this.received) this.received = parsed.walStart;
    const streamed = this.streamed?.take(parsed.data, parsed.walStart);
    if (streamed !== undefined && streamed !== false) {
      // A Stream Commit: later frames wait until its replay has gone through the normal path.
      if (streamed !== true) this.hold(streamed);
      return;
    }
    const message = this.decoder.decode(parsed.data);
    if (message.tag === 'relation') {
      this.hold(this.relationUpdates.apply(message), 'SOURCE_QUERY_FAILED');
      return;
    }
    this.assembler.handle(message, parsed.walStart);
  }

  /** Holds every later frame until `work` settles (a failure stops the capture). */
  private hold(work: Promise<void>, code?: Parameters<typeof toCdcError>[1]): void {
    this.blocked = true;
    this.updateFlow();
    void work.then(
      () => {
        this.blocked = false;
        this.drive();
      },
      (error: unknown) => this.fail(toCdcError(error, code)),
    );
  }
}
