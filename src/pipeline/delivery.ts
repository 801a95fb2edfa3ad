/**
 * Delivery: buffers events, writes them to the sink in batches, stores the checkpoint once a batch
 * is durable, and answers the one number PostgreSQL may forget up to: `acked`.
 *
 * The acknowledgement rule (ARCHITECTURE.md): `acked` is the commit end LSN of the last
 * transaction whose events are all durable in the sink AND whose checkpoint is stored. It is never
 * the last received LSN. With nothing in flight, `confirmIdle` moves it (and the checkpoint) to the
 * keepalive's walEnd so an idle slot holds no WAL.
 *
 * Delivery decides nothing about time on its own: the stream loop's scheduler (scheduler.ts) asks it whether a
 * checkpoint is ready to store (`checkpointReady`) and when a batch is due (`batchDueAt`), and calls
 * `storeCheckpoint` and `writeBatch`. They run in the background, a write beside a store, batches made durable
 * meanwhile sharing the next checkpoint (checkpoint-pipeline.ts: the pipelining, and where `acked` moves).
 *
 * Batches are cut at transaction boundaries so the stored sink position always matches the stored
 * LSN. A transaction too big to buffer is written in parts without a checkpoint; the checkpoint at
 * its commit covers them (the JSONL sink truncates uncommitted parts away after a crash).
 */
import { formatLsn } from '../protocol/lsn.ts';
import type { Lsn } from '../protocol/messages.ts';
import type { ResumeState, CommitIdentity, OffsetStore } from '../offsets/store.ts';
import type { Sink, SinkPosition } from '../sinks/contract.ts';
import { TopicRegistry, type EventBatch } from '../sinks/batch.ts';
import { EventBatchBuilder } from '../sinks/batch-builder.ts';
import type { ChangeSink } from '../envelope/change-sink.ts';
import type { EngineEvents } from '../core/engine-events.ts';
import { BatchReports } from './delivery-report.ts';
import {
  CheckpointPipeline,
  type CheckpointHooks,
  type CheckpointIdentity,
  type CutBatch,
} from './checkpoint-pipeline.ts';

export interface DeliveryOptions {
  readonly maxEvents: number;
  readonly maxDelayMs: number;
}

/** What Delivery tells the stream loop: the pipeline's hooks (checkpoint-pipeline.ts) and these. */
export interface DeliveryHooks extends CheckpointHooks {
  /** Buffered events passed the high-water mark (true) or fell back below it (false). */
  pressure(high: boolean): void;
  /** Hears `batch-written`, `checkpoint-stored` and incremental `snapshot-progress` (once per batch or checkpoint). */
  readonly events?: EngineEvents | undefined;
}

/** A batch is written once it holds this many bytes, whatever its event count. */
const MAX_BATCH_BYTES = 16 * 1024 * 1024;
/** Reading pauses while this much is buffered (the sink is behind); bounds memory with huge transactions. */
const MAX_BUFFERED_BYTES = 48 * 1024 * 1024;

export class Delivery implements ChangeSink {
  private readonly options: DeliveryOptions;
  private readonly hooks: DeliveryHooks;

  readonly topics = new TopicRegistry();
  /** Serialized events not yet handed to the sink (off the JS heap: see sinks/batch.ts). */
  private readonly pending = new EventBatchBuilder(this.topics);
  /** Number of leading `pending` events that belong to committed transactions. */
  private boundary = 0;
  /** Commit end LSN of the last committed transaction in `pending` (or of an empty one). */
  private boundaryLsn: Lsn;
  /** The progress now and at the boundary (compared by identity with the cut's and the stored checkpoint's). */
  private progress: ResumeState;
  private boundaryResumeState: ResumeState;
  /**
   * The last transaction handed over (Checkpoint.lastCommit), kept as numbers so a commit costs no
   * allocation; `lastCommit` is built from them when a checkpoint is cut.
   */
  private lastCommitLsn: Lsn = 0;
  private lastEndLsn: Lsn = 0;
  private lastXid = -1;
  private lastCommitChanged = false;
  private lastCommit: CommitIdentity | undefined;
  /** What is reported per batch and checkpoint (metrics): counts by table and op, commit times. */
  private readonly reports: BatchReports;
  /** The sink writes and checkpoint stores, running in the background. */
  private readonly pipeline: CheckpointPipeline;
  /** The sink keeps no reference to a written batch: its slab goes back to `pending` (EventBatchBuilder.recycle). */
  private readonly releasesBatches: boolean;
  /** The LSN and progress of the last batch cut (written or being written). */
  private cutLsn: Lsn;
  private cutResumeState: ResumeState;
  /** When the committed events must be cut into a batch (see batchDueAt). */
  private dueAt = Infinity;
  private highWater = false;

  constructor(
    sink: Sink,
    offsets: OffsetStore,
    identity: CheckpointIdentity,
    start: { lsn: Lsn; position: SinkPosition; progress?: ResumeState; lastCommit?: CommitIdentity | undefined },
    options: DeliveryOptions,
    hooks: DeliveryHooks,
  ) {
    this.options = options;
    this.hooks = hooks;
    this.boundaryLsn = start.lsn;
    this.cutLsn = start.lsn;
    this.progress = this.boundaryResumeState = this.cutResumeState = start.progress ?? {};
    this.lastCommit = start.lastCommit;
    this.reports = new BatchReports(hooks.events);
    this.releasesBatches = sink.releasesBatches === true;
    this.pipeline = new CheckpointPipeline(
      sink,
      offsets,
      identity,
      { lsn: start.lsn, position: start.position, progress: this.progress },
      hooks,
      this.reports,
    );
  }

  /** The snapshot progress to store from the next `commit` on (see ResumeState). */
  setResumeState(progress: ResumeState): void {
    this.progress = progress;
  }

  get currentResumeState(): ResumeState {
    return this.progress;
  }

  /** The commit LSN of the last committed transaction handed over (delivered or not). */
  get committedLsn(): Lsn {
    return this.boundaryLsn;
  }

  /** Something committed (events, an LSN or progress) is not in the stored checkpoint yet. */
  private get behind(): boolean {
    return this.boundaryLsn > this.pipeline.acked || this.boundaryResumeState !== this.pipeline.storedResumeState;
  }

  /** Something committed (events, an LSN or progress) is not in a batch cut yet. */
  private get uncut(): boolean {
    return this.boundary > 0 || this.boundaryLsn > this.cutLsn || this.boundaryResumeState !== this.cutResumeState;
  }

  /** The flush LSN to send to PostgreSQL (moved only by a stored checkpoint). */
  get acked(): Lsn {
    return this.pipeline.acked;
  }

  /** Events delivered (durable) since start. */
  get delivered(): number {
    return this.pipeline.delivered;
  }

  /** Nothing buffered, nothing being written or stored, no committed LSN waiting for a checkpoint. */
  get idle(): boolean {
    return this.pending.count === 0 && this.pipeline.settled && !this.behind;
  }

  get buffered(): number {
    return this.pending.count;
  }

  /** A sink write or checkpoint store is running. */
  get busy(): boolean {
    return this.pipeline.busy;
  }

  /** Batches the sink made durable wait for their checkpoint: `storeCheckpoint` is next (scheduler.ts). */
  get checkpointReady(): boolean {
    return this.pipeline.checkpointReady;
  }

  /**
   * When `writeBatch` should run (`Date.now()` ms): now when the committed events fill a batch, when an open
   * transaction is too big to buffer, or when an idle move is waiting; `maxDelayMs` after the first commit since
   * the last cut otherwise; `Infinity` when there is nothing to cut or a write (or, unless pipelined, a store)
   * is running.
   */
  get batchDueAt(): number {
    if (!this.pipeline.writeFree) return Infinity;
    if (this.openTransactionTooBig()) return 0;
    return this.dueAt;
  }

  /** The batch builder events are written into (see ChangeSink). */
  get writer(): EventBatchBuilder {
    return this.pending;
  }

  /** Appends one whole event line (no newline inside). */
  event(topic: number, line: string): void {
    this.pending.startEvent();
    this.pending.text(line);
    this.eventEnd(topic);
  }

  eventEnd(topic: number, flags = 0, tally = -1): void {
    const pending = this.pending;
    pending.endEvent(topic, flags);
    this.reports.ended(pending.count - 1, tally);
    if (!this.highWater && (pending.count >= this.options.maxEvents * 4 || pending.bytes >= MAX_BUFFERED_BYTES)) {
      this.highWater = true;
      this.hooks.pressure(true);
    }
    // A huge open transaction: it is written in parts so memory stays bounded (batchDueAt says now).
    if (this.pipeline.writeFree && this.openTransactionTooBig()) this.hooks.ready();
  }

  tallyBase(table: string): number {
    return this.reports.tallyBase(table);
  }

  commit(endLsn: Lsn, commitLsn?: Lsn, xid?: number, commitAt?: number): void {
    this.boundary = this.pending.count;
    this.reports.committed(commitAt);
    if (endLsn > this.boundaryLsn) this.boundaryLsn = endLsn;
    if (commitLsn !== undefined && xid !== undefined) {
      this.lastCommitLsn = commitLsn;
      this.lastEndLsn = endLsn;
      this.lastXid = xid;
      this.lastCommitChanged = true;
    }
    this.boundaryResumeState = this.progress;
    if (this.pending.count >= this.options.maxEvents || this.pending.bytes >= MAX_BATCH_BYTES) this.dueAt = 0;
    // Committed while a write runs: written as soon as it is done, as one continuous pump would.
    else if (this.dueAt === Infinity) this.dueAt = this.pipeline.writeFree ? Date.now() + this.options.maxDelayMs : 0;
  }

  private openTransactionTooBig(): boolean {
    return (
      this.pending.count - this.boundary >= this.options.maxEvents * 2 ||
      (this.boundary === 0 && this.pending.bytes >= MAX_BATCH_BYTES)
    );
  }

  /**
   * With nothing in flight, moves the committed position to `walEnd` (a keepalive's position): every
   * transaction that committed before it has been received and delivered. The next `writeBatch` and
   * `storeCheckpoint` move the checkpoint and `acked` there. Returns whether it moved.
   */
  moveIdle(walEnd: Lsn, inFlight: boolean): boolean {
    if (inFlight || !this.idle || walEnd <= this.pipeline.acked || this.pipeline.failed) return false;
    this.boundaryLsn = walEnd;
    this.dueAt = 0;
    return true;
  }

  /** `moveIdle`, then the checkpoint stored there (for stop and tests: the stream loop's scheduler does both). */
  async confirmIdle(walEnd: Lsn, inFlight: boolean): Promise<void> {
    if (this.moveIdle(walEnd, inFlight)) await this.drain();
  }

  /** Writes and checkpoints everything committed so far; resolves when done (or failed). */
  async drain(): Promise<void> {
    for (;;) {
      if (this.pipeline.failed) return;
      const running = this.pipeline.running;
      if (this.checkpointReady) this.storeCheckpoint();
      else if (this.pipeline.writeFree && this.uncut) this.writeBatch();
      else if (running) await running;
      else return;
    }
  }

  /**
   * Cuts a batch and starts writing it (one write at a time): the committed events, or, with none committed
   * and an open transaction too big to buffer, all of it (durable in the sink, but no checkpoint until its
   * commit). A committed batch becomes `checkpointReady` once durable; one without events at once.
   */
  writeBatch(): void {
    if (!this.pipeline.writeFree) return;
    this.dueAt = Infinity;
    if (this.uncut) {
      if (this.lastCommitChanged) {
        this.lastCommitChanged = false;
        this.lastCommit = {
          commitLsn: formatLsn(this.lastCommitLsn),
          endLsn: formatLsn(this.lastEndLsn),
          xid: this.lastXid,
        };
      }
      const { batch, written } = this.reports.cut(this.pending, this.boundary, true);
      const cut: CutBatch = {
        lsn: this.boundaryLsn,
        progress: this.boundaryResumeState,
        lastCommit: this.lastCommit,
        count: batch.count,
        lastCommitAt: this.reports.lastCutCommitAt,
      };
      this.cutLsn = cut.lsn;
      this.cutResumeState = cut.progress;
      this.boundary = 0;
      this.relievePressure();
      this.pipeline.writeCommitted(batch, cut, this.thenRecycle(batch, written));
    } else if (this.openTransactionTooBig()) {
      const { batch, written } = this.reports.cut(this.pending, this.pending.count, false);
      this.relievePressure();
      this.pipeline.writePart(batch, this.thenRecycle(batch, written));
    }
  }

  /**
   * `written`, then the batch's slab back to `pending` when the sink is done with it: a fresh slab per
   * batch, and regrowing it, was 6% of the streaming profile (docs/benchmarks.md).
   */
  private thenRecycle(batch: EventBatch, written: () => void): () => void {
    if (!this.releasesBatches) return written;
    return () => {
      written();
      this.pending.recycle(batch);
    };
  }

  /** Stores the checkpoint of the batches the sink made durable (checkpoint-pipeline.ts); `acked` moves when done. */
  storeCheckpoint(): void {
    this.pipeline.storeCheckpoint();
  }

  private relievePressure(): void {
    if (
      this.highWater &&
      this.pending.count < this.options.maxEvents * 2 &&
      this.pending.bytes < MAX_BUFFERED_BYTES / 2
    ) {
      this.highWater = false;
      this.hooks.pressure(false);
    }
  }
}
