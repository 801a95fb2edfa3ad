/**
 * The streaming part of a capture, from START_REPLICATION to CopyDone: CopyData frames -> pgoutput messages ->
 * events -> Delivery -> sink and checkpoint -> standby status updates.
 *
 * One scheduler (scheduler.ts) decides what happens next, in a written-down order of priority; this class keeps
 * the state it decides on, performs the action it names, and sleeps on one timer (the scheduler's next deadline)
 * or until something it waits for happens. Frames are queued on arrival and processed only when nothing more
 * urgent is due. Standby status updates (standby-status.ts: what they report) leave on the interval, after each
 * stored checkpoint, in answer to a keepalive, and once at a clean stop.
 *
 * Flow control (stream-flow.ts): the stream is paused while the sink is behind or while frames are held (the start
 * check, a Relation message's catalog lookup, the replay of a streamed transaction).
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
import { postgresCatalog, type FrameStream, type LoopDeps, type StreamCatalog } from './loop-ports.ts';
import type { RelationUpdates } from './relation-updates.ts';
import { buildStreamParts } from './stream-parts.ts';
import { idleState, nextAction, nextDeadline, type LoopAction } from './scheduler.ts';
import { StandbyStatus } from './standby-status.ts';
import { StreamFlow } from './stream-flow.ts';
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
  /** What standby status updates report, and whether the start is verified (standby-status.ts). */
  private readonly status: StandbyStatus;
  /** Frames received and not yet processed. */
  private readonly inbox = new FrameQueue();
  /** The scheduler's one timer, and its runs after something it waits for happened. */
  private readonly wakeup = new Wakeup(() => this.drive());
  private driving = false;
  /** Pauses reading while the sink is behind or frames are held (stream-flow.ts). */
  private readonly flow = new StreamFlow(
    () => this.drive(),
    (error) => this.fail(error),
  );
  private stopping = false;
  private lastWalEnd: Lsn = 0;
  private nextBeatAt = Infinity;

  constructor(deps: LoopDeps) {
    this.deps = deps;
    this.catalog = deps.catalog ?? postgresCatalog(deps);
    this.decoder = new PgoutputDecoder({ protoVersion: deps.config.streaming ? 2 : 1 });
    for (const [oid, type] of deps.types) this.types.set(oid, type);
    const parts = buildStreamParts(deps, this.catalog, this.types, this.decoder, {
      pressure: (high) => {
        this.flow.setPressure(high);
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
    this.status = new StandbyStatus(deps, this.state, parts.delivery, parts.windows);
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
    this.flow.attach(stream);
    stream.on('frame', (frame) => this.onFrame(frame));
    stream.on('error', (error) => this.fail(error));
    stream.on('keepalive-wanted', () => this.askKeepalive());
    stream.on('end', () =>
      this.fail(
        new CdcError('REPLICATION_STREAM_FAILED', 'the server ended the replication stream', { retryable: true }),
      ),
    );
    const now = Date.now();
    this.state.statusDueAt = now + this.status.intervalMs;
    const beat = this.deps.heartbeat.interval;
    if (beat > 0) this.nextBeatAt = now + beat;
    // No frame is processed before the slot is read again (start-check.ts).
    this.flow.hold(this.verifyStart());
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
    if (checked.history) this.assembler.checkHistory(checked.history);
    this.status.started(checked.history);
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
    if (this.status.verified) await this.delivery.confirmIdle(this.lastWalEnd, this.inFlight);
    // After the idle confirmation: an open streamed transaction must keep the confirmed LSN before it.
    this.streamed?.close();
    this.status.send(this.stream, Date.now());
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

  /** The next status update asks the server for a reply (a keepalive): snapshot windows and the receive probe. */
  private askKeepalive(): void {
    this.status.askKeepalive();
    this.wake();
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
    this.flow.update();
    this.wakeup.at(nextDeadline(this.state));
  }

  private refreshState(): typeof this.state {
    const state = this.state;
    const delivery = this.delivery;
    state.checkpointReady = delivery.checkpointReady;
    state.batchDueAt = delivery.batchDueAt;
    state.heartbeatDueAt = this.deps.heartbeat.beating ? Infinity : this.nextBeatAt;
    state.atBoundary = !this.assembler.inTransaction && !this.flow.blocked;
    state.framesWaiting = this.inbox.size > 0;
    state.reading = !this.flow.blocked;
    return state;
  }

  private perform(action: LoopAction, now: number): void {
    switch (action) {
      case 'reply':
        this.status.send(this.stream, now);
        return;
      case 'status': {
        const interval = now >= this.state.statusDueAt;
        this.status.send(this.stream, now);
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
    return this.assembler.inTransaction || this.flow.blocked || (this.streamed?.open ?? false);
  }

  /** A heartbeat's confirmation: with nothing in flight, checkpoint and `acked` follow the server (heartbeat.ts). */
  private confirmIdle(): Promise<void> {
    // Not before the replayed history is verified: the checkpoint would pass what is unchecked.
    if (!this.stopping && this.status.verified && this.delivery.moveIdle(this.lastWalEnd, this.inFlight)) this.wake();
    return Promise.resolve();
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
        this.status.keepalive(parsed.walEnd);
        this.windows.keepalive(parsed.walEnd);
      }
      return;
    }
    this.status.receive(parsed.walStart);
    const streamed = this.streamed?.take(parsed.data, parsed.walStart);
    if (streamed !== undefined && streamed !== false) {
      // A Stream Commit: later frames wait until its replay has gone through the normal path.
      if (streamed !== true) this.flow.hold(streamed);
      return;
    }
    const message = this.decoder.decode(parsed.data);
    if (message.tag === 'relation') {
      this.flow.hold(this.relationUpdates.apply(message), 'SOURCE_QUERY_FAILED');
      return;
    }
    this.assembler.handle(message, parsed.walStart);
  }
}
