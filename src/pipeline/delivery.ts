/**
 * Delivery: buffers events, writes them to the sink in batches, stores the checkpoint once a batch
 * is durable, and owns the one number PostgreSQL may forget up to: `acked`.
 *
 * The acknowledgement rule (ARCHITECTURE.md): `acked` is the commit end LSN of the last
 * transaction whose events are all durable in the sink AND whose checkpoint is stored. It is never
 * the last received LSN. With nothing in flight, `confirmIdle` moves it (and the checkpoint) to the
 * keepalive's walEnd so an idle slot holds no WAL.
 *
 * Batches are cut at transaction boundaries so the stored sink position always matches the stored
 * LSN. A transaction too big to buffer is written in parts without a checkpoint; the checkpoint at
 * its commit covers them (the JSONL sink truncates uncommitted parts away after a crash).
 */
import { formatLsn } from '../protocol/lsn.ts';
import type { Lsn } from '../protocol/messages.ts';
import type { Checkpoint, CheckpointProgress, CommitIdentity, OffsetStore } from '../offsets/store.ts';
import type { Sink, SinkPosition } from '../sinks/contract.ts';
import { EventBatchBuilder, TopicRegistry } from '../sinks/batch.ts';
import { toCdcError, type CdcError } from '../core/errors.ts';
import type { ChangeSink } from '../envelope/change-sink.ts';

export interface DeliveryOptions {
  readonly maxEvents: number;
  readonly maxDelayMs: number;
}

export interface DeliveryHooks {
  /** Buffered events passed the high-water mark (true) or fell back below it (false). */
  pressure(high: boolean): void;
  /** A sink or offset store failure: nothing after `acked` is durable; the run must stop. */
  failed(error: CdcError): void;
  /** A checkpoint was stored (for status and logs); `delivered` counts the events durable with it since start. */
  stored(checkpoint: Checkpoint, delivered: number): void;
  /**
   * Called before the checkpoint at `lsn` is stored; the checkpoint waits for it. For state that
   * must be durable at least as far as the checkpoint (the TOAST fill store).
   */
  beforeStore?(lsn: Lsn): Promise<void>;
}

/** A batch is written once it holds this many bytes, whatever its event count. */
const MAX_BATCH_BYTES = 16 * 1024 * 1024;
/** Reading pauses while this much is buffered (the sink is behind); bounds memory with huge transactions. */
const MAX_BUFFERED_BYTES = 48 * 1024 * 1024;

type CheckpointIdentity = Pick<Checkpoint, 'systemId' | 'timeline' | 'database' | 'slot' | 'publication'>;

export class Delivery implements ChangeSink {
  private readonly sink: Sink;
  private readonly offsets: OffsetStore;
  private readonly identity: CheckpointIdentity;
  private readonly options: DeliveryOptions;
  private readonly hooks: DeliveryHooks;

  readonly topics = new TopicRegistry();
  /** Serialized events not yet handed to the sink (off the JS heap: see sinks/batch.ts). */
  private readonly pending = new EventBatchBuilder(this.topics);
  /** Number of leading `pending` events that belong to committed transactions. */
  private boundary = 0;
  /** Commit end LSN of the last committed transaction in `pending` (or of an empty one). */
  private boundaryLsn: Lsn;
  private position: SinkPosition;
  private ackedLsn: Lsn;
  /** The progress now, at the boundary, and in the stored checkpoint (compared by identity). */
  private progress: CheckpointProgress;
  private boundaryProgress: CheckpointProgress;
  private storedProgress: CheckpointProgress;
  /**
   * The last transaction handed over (Checkpoint.lastCommit), kept as numbers so a commit costs no
   * allocation; `lastCommit` is built from them when a checkpoint is cut.
   */
  private lastCommitLsn: Lsn = 0;
  private lastEndLsn: Lsn = 0;
  private lastXid = -1;
  private lastCommitChanged = false;
  private lastCommit: CommitIdentity | undefined;
  private pump: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private highWater = false;
  private failure: CdcError | undefined;
  /** Events delivered (durable) since start. */
  delivered = 0;

  constructor(
    sink: Sink,
    offsets: OffsetStore,
    identity: CheckpointIdentity,
    start: { lsn: Lsn; position: SinkPosition; progress?: CheckpointProgress; lastCommit?: CommitIdentity | undefined },
    options: DeliveryOptions,
    hooks: DeliveryHooks,
  ) {
    this.sink = sink;
    this.offsets = offsets;
    this.identity = identity;
    this.options = options;
    this.hooks = hooks;
    this.ackedLsn = start.lsn;
    this.boundaryLsn = start.lsn;
    this.position = start.position;
    this.progress = this.boundaryProgress = this.storedProgress = start.progress ?? {};
    this.lastCommit = start.lastCommit;
  }

  /** The snapshot progress to store from the next `commit` on (see CheckpointProgress). */
  setProgress(progress: CheckpointProgress): void {
    this.progress = progress;
  }

  get currentProgress(): CheckpointProgress {
    return this.progress;
  }

  /** The commit LSN of the last committed transaction handed over (delivered or not). */
  get committedLsn(): Lsn {
    return this.boundaryLsn;
  }

  /** Something committed (events, an LSN or progress) is not in the stored checkpoint yet. */
  private get behind(): boolean {
    return this.boundaryLsn > this.ackedLsn || this.boundaryProgress !== this.storedProgress;
  }

  /** The flush LSN to send to PostgreSQL. */
  get acked(): Lsn {
    return this.ackedLsn;
  }

  /** Nothing buffered, nothing being written, no committed LSN waiting for a checkpoint. */
  get idle(): boolean {
    return this.pending.count === 0 && this.pump === undefined && !this.behind;
  }

  get buffered(): number {
    return this.pending.count;
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

  eventEnd(topic: number): void {
    const pending = this.pending;
    pending.endEvent(topic);
    if (!this.highWater && (pending.count >= this.options.maxEvents * 4 || pending.bytes >= MAX_BUFFERED_BYTES)) {
      this.highWater = true;
      this.hooks.pressure(true);
    }
    // A huge open transaction: write it in parts so memory stays bounded.
    if (this.openTransactionTooBig()) this.kick();
  }

  commit(endLsn: Lsn, commitLsn?: Lsn, xid?: number): void {
    this.boundary = this.pending.count;
    if (endLsn > this.boundaryLsn) this.boundaryLsn = endLsn;
    if (commitLsn !== undefined && xid !== undefined) {
      this.lastCommitLsn = commitLsn;
      this.lastEndLsn = endLsn;
      this.lastXid = xid;
      this.lastCommitChanged = true;
    }
    this.boundaryProgress = this.progress;
    if (this.pending.count >= this.options.maxEvents || this.pending.bytes >= MAX_BATCH_BYTES) this.kick();
    else this.arm();
  }

  private openTransactionTooBig(): boolean {
    return (
      this.pending.count - this.boundary >= this.options.maxEvents * 2 ||
      (this.boundary === 0 && this.pending.bytes >= MAX_BATCH_BYTES)
    );
  }

  /**
   * With nothing in flight, moves the checkpoint and `acked` to `walEnd` (a keepalive's position):
   * every transaction that committed before it has been received and delivered.
   */
  async confirmIdle(walEnd: Lsn, inTransaction: boolean): Promise<void> {
    if (inTransaction || !this.idle || walEnd <= this.ackedLsn || this.failure) return;
    this.boundaryLsn = walEnd;
    this.kick();
    await this.pump;
  }

  /** Writes and checkpoints everything committed so far; resolves when done (or failed). */
  async drain(): Promise<void> {
    while (this.pump || (this.behind && !this.failure)) {
      this.kick();
      await this.pump;
    }
  }

  private arm(): void {
    if (this.timer || this.pump) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.kick();
    }, this.options.maxDelayMs);
  }

  private kick(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.pump || this.failure) return;
    this.pump = this.run().finally(() => {
      this.pump = undefined;
      // More may have committed while we were writing.
      if (!this.failure && (this.behind || this.openTransactionTooBig())) this.arm();
    });
  }

  private async run(): Promise<void> {
    try {
      while (!this.failure) {
        if (this.boundary > 0 || this.behind) {
          const lsn = this.boundaryLsn;
          const progress = this.boundaryProgress;
          if (this.lastCommitChanged) {
            this.lastCommitChanged = false;
            this.lastCommit = {
              commitLsn: formatLsn(this.lastCommitLsn),
              endLsn: formatLsn(this.lastEndLsn),
              xid: this.lastXid,
            };
          }
          const lastCommit = this.lastCommit;
          const batch = this.pending.take(this.boundary);
          this.boundary = 0;
          this.relievePressure();
          if (batch.count > 0) this.position = await this.sink.write(batch);
          this.delivered += batch.count;
          await this.store(lsn, progress, lastCommit);
        } else if (this.openTransactionTooBig()) {
          // Part of one huge transaction: durable in the sink, but no checkpoint until its commit.
          const batch = this.pending.take(this.pending.count);
          this.relievePressure();
          this.position = await this.sink.write(batch);
          this.delivered += batch.count;
        } else return;
      }
    } catch (error) {
      this.failure = toCdcError(error, 'SINK_FAILED');
      this.hooks.failed(this.failure);
    }
  }

  private async store(lsn: Lsn, progress: CheckpointProgress, lastCommit: CommitIdentity | undefined): Promise<void> {
    if (lsn <= this.ackedLsn && progress === this.storedProgress) return;
    if (lsn < this.ackedLsn) lsn = this.ackedLsn;
    const checkpoint: Checkpoint = {
      version: 2,
      ...this.identity,
      lsn: formatLsn(lsn),
      ...(lastCommit ? { lastCommit } : {}),
      sink: this.position,
      updatedAt: new Date().toISOString(),
      ...progress,
    };
    await this.hooks.beforeStore?.(lsn);
    await this.offsets.commit(checkpoint);
    this.ackedLsn = lsn;
    this.storedProgress = progress;
    this.hooks.stored(checkpoint, this.delivered);
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

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
