/**
 * Delivery: buffers events, writes them to the sink in batches, stores the checkpoint once a batch
 * is durable, and owns the one number PostgreSQL may forget up to: `acked`.
 *
 * The acknowledgement rule (ARCHITECTURE.md): `acked` is the commit end LSN of the last
 * transaction whose events are all durable in the sink AND whose checkpoint is stored. It is never
 * the last received LSN. With nothing in flight, `confirmIdle` moves it (and the checkpoint) to the
 * keepalive's walEnd so an idle slot holds no WAL.
 *
 * Delivery decides nothing about time on its own: the stream loop's scheduler (scheduler.ts) asks it whether a
 * checkpoint is ready to store (`checkpointReady`) and when a batch is due (`batchDueAt`), and calls
 * `storeCheckpoint` and `writeBatch`. They run in the background: one sink write at a time, and one checkpoint
 * store at a time, the two side by side (pipelined). While the checkpoint of batch N is being stored, batch N+1
 * is written; batches made durable meanwhile are covered by one checkpoint, the next (coalesced). Without this,
 * every batch waited for the checkpoint store before it (an fsync of the offsets file and one of its
 * directory), so a small batch delay paid three fsyncs in series per batch and one slow fsync held every
 * change behind it (bench/latency.ts, docs/benchmarks-latency.md). A sink that stores checkpoints itself
 * (`Sink.checkpoints`, Kafka: the store commits the transaction the writes opened) keeps them in series.
 *
 * Batches are cut at transaction boundaries so the stored sink position always matches the stored
 * LSN. A transaction too big to buffer is written in parts without a checkpoint; the checkpoint at
 * its commit covers them (the JSONL sink truncates uncommitted parts away after a crash).
 */
import { formatLsn } from '../protocol/lsn.ts';
import type { Lsn } from '../protocol/messages.ts';
import type { Checkpoint, ResumeState, CommitIdentity, OffsetStore } from '../offsets/store.ts';
import type { Sink, SinkPosition } from '../sinks/contract.ts';
import { EventBatchBuilder, TopicRegistry } from '../sinks/batch.ts';
import { toCdcError, type CdcError } from '../core/errors.ts';
import type { ChangeSink } from '../envelope/change-sink.ts';
import type { EngineEvents } from '../core/engine-events.ts';
import { BatchReports } from './delivery-report.ts';

export interface DeliveryOptions {
  readonly maxEvents: number;
  readonly maxDelayMs: number;
}

export interface DeliveryHooks {
  /** Buffered events passed the high-water mark (true) or fell back below it (false). */
  pressure(high: boolean): void;
  /** A sink or offset store failure: nothing after `acked` is durable; the run must stop. */
  failed(error: CdcError): void;
  /**
   * A checkpoint was stored: `acked` may have moved (the stream loop sends a status update). `delivered` counts
   * the events durable with it since start.
   */
  stored(checkpoint: Checkpoint, delivered: number): void;
  /**
   * Something the scheduler waits for happened outside its own steps: a write or store completed, or an open
   * transaction grew too big to buffer. The stream loop looks at `checkpointReady` and `batchDueAt` again.
   */
  ready(): void;
  /**
   * Called before the checkpoint at `lsn` is stored; the checkpoint waits for it. For state that
   * must be durable at least as far as the checkpoint (the TOAST fill store).
   */
  beforeStore?(lsn: Lsn): Promise<void>;
  /** The xid horizon valid for a checkpoint at `lsn` (lifecycle/xid-horizon.ts), stored with it. Never blocks. */
  xidHorizon?(lsn: Lsn): string | undefined;
  /** Hears `batch-written`, `checkpoint-stored` and incremental `snapshot-progress` (once per batch or checkpoint). */
  readonly events?: EngineEvents | undefined;
}

/** A batch is written once it holds this many bytes, whatever its event count. */
const MAX_BATCH_BYTES = 16 * 1024 * 1024;
/** Reading pauses while this much is buffered (the sink is behind); bounds memory with huge transactions. */
const MAX_BUFFERED_BYTES = 48 * 1024 * 1024;

/** What the checkpoint of a cut batch will say (once the sink made it durable). */
interface CutBatch {
  lsn: Lsn;
  progress: ResumeState;
  lastCommit: CommitIdentity | undefined;
  /** Its events (counted as delivered once the checkpoint is stored). */
  count: number;
  /** Commit time (Unix ms) of the last transaction the checkpoint will cover. */
  lastCommitAt: number | undefined;
}

/** The batches the sink made durable whose checkpoint is not stored yet (all of them: the latest's). */
interface DurableBatch extends CutBatch {
  /** Durable in the sink; the checkpoint is not stored yet. */
  ready: boolean;
  /** The sink's position after the latest of them. */
  position: SinkPosition;
}

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
  private progress: ResumeState;
  private boundaryResumeState: ResumeState;
  private storedResumeState: ResumeState;
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
  /** The sink write running (one at a time). */
  private writing: Promise<void> | undefined;
  /** The checkpoint store running (one at a time; beside a write unless `pipelined` is false). */
  private storing: Promise<void> | undefined;
  /** Writes run while a checkpoint is stored: false for a sink whose checkpoint store commits its writes. */
  private readonly pipelined: boolean;
  /** The LSN and progress of the last batch cut (written or being written). */
  private cutLsn: Lsn;
  private cutResumeState: ResumeState;
  /** When the committed events must be cut into a batch (see batchDueAt). */
  private dueAt = Infinity;
  /** The batch cut last: what its checkpoint will say once the sink made it durable. */
  private readonly durable: DurableBatch = {
    ready: false,
    lsn: 0,
    progress: {},
    lastCommit: undefined,
    count: 0,
    lastCommitAt: undefined,
    position: {},
  };
  private highWater = false;

  private failure: CdcError | undefined;
  /** Events delivered (durable) since start. */
  delivered = 0;

  constructor(
    sink: Sink,
    offsets: OffsetStore,
    identity: CheckpointIdentity,
    start: { lsn: Lsn; position: SinkPosition; progress?: ResumeState; lastCommit?: CommitIdentity | undefined },
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
    this.cutLsn = start.lsn;
    this.position = start.position;
    this.progress = this.boundaryResumeState = this.storedResumeState = this.cutResumeState = start.progress ?? {};
    this.pipelined = sink.checkpoints === undefined;
    this.lastCommit = start.lastCommit;
    this.reports = new BatchReports(hooks.events);
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
    return this.boundaryLsn > this.ackedLsn || this.boundaryResumeState !== this.storedResumeState;
  }

  /** Something committed (events, an LSN or progress) is not in a batch cut yet. */
  private get uncut(): boolean {
    return this.boundary > 0 || this.boundaryLsn > this.cutLsn || this.boundaryResumeState !== this.cutResumeState;
  }

  /** A batch may be cut and written now: no write runs (nor a store, unless pipelined). */
  private get writeFree(): boolean {
    return (
      this.writing === undefined &&
      (this.pipelined || (this.storing === undefined && !this.durable.ready)) &&
      this.failure === undefined
    );
  }

  /** The flush LSN to send to PostgreSQL. */
  get acked(): Lsn {
    return this.ackedLsn;
  }

  /** Nothing buffered, nothing being written or stored, no committed LSN waiting for a checkpoint. */
  get idle(): boolean {
    return (
      this.pending.count === 0 &&
      this.writing === undefined &&
      this.storing === undefined &&
      !this.durable.ready &&
      !this.behind
    );
  }

  get buffered(): number {
    return this.pending.count;
  }

  /** A sink write or checkpoint store is running. */
  get busy(): boolean {
    return this.writing !== undefined || this.storing !== undefined;
  }

  /** Batches the sink made durable wait for their checkpoint: `storeCheckpoint` is next (scheduler.ts). */
  get checkpointReady(): boolean {
    return (
      this.durable.ready &&
      this.storing === undefined &&
      (this.pipelined || this.writing === undefined) &&
      this.failure === undefined
    );
  }

  /**
   * When `writeBatch` should run (`Date.now()` ms): now when the committed events fill a batch, when an open
   * transaction is too big to buffer, or when an idle move is waiting; `maxDelayMs` after the first commit since
   * the last cut otherwise; `Infinity` when there is nothing to cut or a write (or, unless pipelined, a store)
   * is running.
   */
  get batchDueAt(): number {
    if (!this.writeFree) return Infinity;
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
    if (this.writeFree && this.openTransactionTooBig()) this.hooks.ready();
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
    else if (this.dueAt === Infinity) this.dueAt = this.writeFree ? Date.now() + this.options.maxDelayMs : 0;
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
    if (inFlight || !this.idle || walEnd <= this.ackedLsn || this.failure) return false;
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
      if (this.failure) return;
      const running = this.writing ?? this.storing;
      if (this.checkpointReady) this.storeCheckpoint();
      else if (this.writeFree && this.uncut) this.writeBatch();
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
    if (!this.writeFree) return;
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
      if (batch.count === 0) this.madeDurable(cut, this.position);
      else
        this.writing = this.track(
          this.sink.write(batch).then((position) => {
            this.position = position;
            written();
            this.madeDurable(cut, position);
          }),
          () => (this.writing = undefined),
        );
    } else if (this.openTransactionTooBig()) {
      const { batch, written } = this.reports.cut(this.pending, this.pending.count, false);
      this.relievePressure();
      this.writing = this.track(
        this.sink.write(batch).then((position) => {
          this.position = position;
          written();
          this.delivered += batch.count;
        }),
        () => (this.writing = undefined),
      );
    }
  }

  /** `cut` is durable in the sink at `position`: its checkpoint (covering any durable before it) may be stored. */
  private madeDurable(cut: CutBatch, position: SinkPosition): void {
    const durable = this.durable;
    durable.count = (durable.ready ? durable.count : 0) + cut.count;
    durable.ready = true;
    durable.lsn = cut.lsn;
    durable.progress = cut.progress;
    durable.lastCommit = cut.lastCommit;
    durable.lastCommitAt = cut.lastCommitAt;
    durable.position = position;
  }

  /** Stores the checkpoint of the durable batch (see the acknowledgement rule in the module doc). */
  storeCheckpoint(): void {
    const durable = this.durable;
    if (!this.checkpointReady) return;
    durable.ready = false;
    const { lsn, progress, lastCommit, count, lastCommitAt, position } = durable;
    durable.count = 0;
    this.delivered += count;
    if (lsn <= this.ackedLsn && progress === this.storedResumeState) return;
    this.storing = this.track(this.store(lsn, progress, lastCommit, lastCommitAt, position), () => {
      this.storing = undefined;
    });
  }

  /** Runs one sink or offsets operation; a failure stops delivery for good. `done` clears it when it ends. */
  private track(work: Promise<void>, done: () => void): Promise<void> {
    return work
      .catch((error: unknown) => {
        // The first failure is the one reported (a write and a store may both fail).
        if (this.failure !== undefined) return;
        this.failure = toCdcError(error, 'SINK_FAILED');
        this.hooks.failed(this.failure);
      })
      .finally(() => {
        done();
        this.hooks.ready();
      });
  }

  private async store(
    lsn: Lsn,
    progress: ResumeState,
    lastCommit: CommitIdentity | undefined,
    lastCommitAt: number | undefined,
    position: SinkPosition,
  ): Promise<void> {
    if (lsn < this.ackedLsn) lsn = this.ackedLsn;
    const xidHorizon = this.hooks.xidHorizon?.(lsn);
    const checkpoint: Checkpoint = {
      version: 2,
      ...this.identity,
      lsn: formatLsn(lsn),
      ...(lastCommit ? { lastCommit } : {}),
      sink: position,
      updatedAt: new Date().toISOString(),
      ...progress,
      ...(xidHorizon !== undefined ? { xidHorizon } : {}),
    };
    await this.hooks.beforeStore?.(lsn);
    const started = performance.now();
    await this.offsets.commit(checkpoint);
    const durationMs = performance.now() - started;
    this.ackedLsn = lsn;
    const before = this.storedResumeState;
    this.storedResumeState = progress;
    this.reports.stored(checkpoint.lsn, this.delivered, lastCommitAt, durationMs, before, progress);
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
}
