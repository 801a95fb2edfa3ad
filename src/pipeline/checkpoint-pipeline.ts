/**
 * The pipelining of Delivery's sink writes and checkpoint stores, and the one place `acked` moves.
 *
 * Writes and stores run in the background: one sink write at a time, and one checkpoint store at a time, the
 * two side by side (pipelined). While the checkpoint of batch N is being stored, batch N+1 is written; batches
 * made durable meanwhile are covered by one checkpoint, the next (coalesced). Without this, every batch waited
 * for the checkpoint store before it (an fsync of the offsets file and one of its directory), so a small batch
 * delay paid three fsyncs in series per batch and one slow fsync held every change behind it (bench/latency.ts,
 * docs/benchmarks-latency.md). A sink that stores checkpoints itself (`Sink.checkpoints`, Kafka: the store
 * commits the transaction the writes opened) keeps them in series.
 *
 * The acknowledgement rule (ARCHITECTURE.md, delivery.ts): `acked` moves only once a checkpoint is stored,
 * to that checkpoint's LSN, and a checkpoint is stored only for batches the sink made durable.
 */
import { formatLsn } from '../protocol/lsn.ts';
import type { Lsn } from '../protocol/messages.ts';
import type { Checkpoint, ResumeState, CommitIdentity, OffsetStore } from '../offsets/store.ts';
import type { Sink, SinkPosition } from '../sinks/contract.ts';
import type { EventBatch } from '../sinks/batch.ts';
import { toCdcError, type CdcError } from '../core/errors.ts';
import type { BatchReports } from './delivery-report.ts';

/** What the pipeline tells the stream loop (the part of DeliveryHooks it calls). */
export interface CheckpointHooks {
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
}

/** What the checkpoint of a cut batch will say (once the sink made it durable). */
export interface CutBatch {
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

/** The slot and server a checkpoint belongs to (the same in every checkpoint of a run). */
export type CheckpointIdentity = Pick<Checkpoint, 'systemId' | 'timeline' | 'database' | 'slot' | 'publication'>;

/**
 * Runs Delivery's sink writes and checkpoint stores (see the module doc): Delivery cuts the batches and says
 * what their checkpoints will hold; this writes them, coalesces the durable ones into the next checkpoint and
 * moves `acked` when it is stored. The first failure stops it for good.
 */
export class CheckpointPipeline {
  private readonly sink: Sink;
  private readonly offsets: OffsetStore;
  private readonly identity: CheckpointIdentity;
  private readonly hooks: CheckpointHooks;
  private readonly reports: BatchReports;

  /** The sink write running (one at a time). */
  private writing: Promise<void> | undefined;
  /** The checkpoint store running (one at a time; beside a write unless `pipelined` is false). */
  private storing: Promise<void> | undefined;
  /** Writes run while a checkpoint is stored: false for a sink whose checkpoint store commits its writes. */
  private readonly pipelined: boolean;
  /** The sink's position after the last write that completed. */
  private position: SinkPosition;
  private ackedLsn: Lsn;
  /** The progress in the stored checkpoint (Delivery compares it by identity). */
  private storedProgress: ResumeState;
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
  private failure: CdcError | undefined;
  private deliveredCount = 0;

  constructor(
    sink: Sink,
    offsets: OffsetStore,
    identity: CheckpointIdentity,
    start: { lsn: Lsn; position: SinkPosition; progress: ResumeState },
    hooks: CheckpointHooks,
    reports: BatchReports,
  ) {
    this.sink = sink;
    this.offsets = offsets;
    this.identity = identity;
    this.hooks = hooks;
    this.reports = reports;
    this.ackedLsn = start.lsn;
    this.position = start.position;
    this.storedProgress = start.progress;
    this.pipelined = sink.checkpoints === undefined;
  }

  /** The LSN of the last checkpoint stored (or of the start): the flush LSN to send to PostgreSQL. */
  get acked(): Lsn {
    return this.ackedLsn;
  }

  /** The progress in the last checkpoint stored (or of the start). */
  get storedResumeState(): ResumeState {
    return this.storedProgress;
  }

  /** Events delivered (durable) since start. */
  get delivered(): number {
    return this.deliveredCount;
  }

  /** A write or store failed: nothing more runs. */
  get failed(): boolean {
    return this.failure !== undefined;
  }

  /** A batch may be cut and written now: no write runs (nor a store, unless pipelined), nothing failed. */
  get writeFree(): boolean {
    return (
      this.writing === undefined &&
      (this.pipelined || (this.storing === undefined && !this.durable.ready)) &&
      this.failure === undefined
    );
  }

  /** Batches the sink made durable wait for their checkpoint: `storeCheckpoint` is next. */
  get checkpointReady(): boolean {
    return (
      this.durable.ready &&
      this.storing === undefined &&
      (this.pipelined || this.writing === undefined) &&
      this.failure === undefined
    );
  }

  /** A sink write or checkpoint store is running. */
  get busy(): boolean {
    return this.writing !== undefined || this.storing !== undefined;
  }

  /** Nothing being written or stored, and no durable batch waiting for its checkpoint. */
  get settled(): boolean {
    return this.writing === undefined && this.storing === undefined && !this.durable.ready;
  }

  /** The write (else the store) running, for `Delivery.drain` to wait on. */
  get running(): Promise<void> | undefined {
    return this.writing ?? this.storing;
  }

  /**
   * Starts writing a batch of committed transactions, which `cut` describes (call only when `writeFree`). Its
   * checkpoint becomes ready once the sink made it durable; at once when it holds no events. `written` is
   * called when it is durable.
   */
  writeCommitted(batch: EventBatch, cut: CutBatch, written: () => void): void {
    if (batch.count === 0) {
      this.madeDurable(cut, this.position);
      return;
    }
    this.writing = this.track(
      this.sink.write(batch).then((position) => {
        this.position = position;
        written();
        this.madeDurable(cut, position);
      }),
      () => (this.writing = undefined),
    );
  }

  /**
   * Starts writing part of an open transaction too big to buffer (call only when `writeFree`): durable in the
   * sink and counted as delivered, but no checkpoint until its commit. `written` is called when it is durable.
   */
  writePart(batch: EventBatch, written: () => void): void {
    this.writing = this.track(
      this.sink.write(batch).then((position) => {
        this.position = position;
        written();
        this.deliveredCount += batch.count;
      }),
      () => (this.writing = undefined),
    );
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

  /** Stores the checkpoint of the durable batches (see the acknowledgement rule in the module doc). */
  storeCheckpoint(): void {
    const durable = this.durable;
    if (!this.checkpointReady) return;
    durable.ready = false;
    const { lsn, progress, lastCommit, count, lastCommitAt, position } = durable;
    durable.count = 0;
    this.deliveredCount += count;
    if (lsn <= this.ackedLsn && progress === this.storedProgress) return;
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
    const before = this.storedProgress;
    this.storedProgress = progress;
    this.reports.stored(checkpoint.lsn, this.deliveredCount, lastCommitAt, durationMs, before, progress);
    this.hooks.stored(checkpoint, this.deliveredCount);
  }
}
