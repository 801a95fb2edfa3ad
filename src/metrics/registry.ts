/**
 * The capture's Prometheus metrics (`/metrics`): a listener of the engine's events (core/engine-events.ts)
 * and of the health monitor's slot samples (health/types.ts), folded into prom-client metrics on a registry
 * of its own (never prom-client's global one, so two captures in one process never share a series).
 *
 * Every update happens per batch, per checkpoint or per sample, never per change event. Names follow the
 * Prometheus conventions: the `pgcdc_` prefix, counters end in `_total`, seconds and bytes units. Label
 * values are bounded: `table` by the table selection, `op` by the ops, `code` and `cause` by the error codes
 * of core/errors.ts, `state`, `status` and `alert` by their enumerations (docs/operations.md, "Metrics").
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EngineEvent, EngineEvents, EngineState, BatchWritten } from '../core/engine-events.ts';
import type { AlertLevel, AlertState, HealthListener, SlotSample, WalStatus } from '../health/types.ts';

const ENGINE_STATES: readonly EngineState[] = [
  'starting',
  'snapshotting',
  'streaming',
  'retrying',
  'stopping',
  'stopped',
];
const WAL_STATUSES: readonly WalStatus[] = ['reserved', 'extended', 'unreserved', 'lost'];
const ALERT_LEVEL: Readonly<Record<AlertLevel, number>> = { ok: 0, warning: 1, critical: 2 };

/** Latencies of a local or networked write: 1 ms to 10 s. */
const WRITE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** From a commit on the server to durable in the sink: 5 ms to 10 min (a capture catching up). */
const COMMIT_TO_DURABLE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

export interface MetricsOptions {
  /** Also export the process's metrics (CPU, memory, event loop lag, GC) with the pgcdc_ prefix; default true. */
  readonly process?: boolean;
}

export class Metrics implements EngineEvents, HealthListener {
  /** The registry every metric here is registered on (own, not prom-client's global one). */
  readonly registry = new Registry();

  private readonly events: Counter<'table' | 'op'>;
  private readonly delivered: Counter;
  private readonly sinkBytes: Counter;
  private readonly batches: Counter;
  private readonly sinkWrite: Histogram;
  private readonly commitToDurable: Histogram;
  private readonly checkpointDuration: Histogram;
  private readonly checkpoints: Counter;
  private readonly checkpointAt: Gauge;
  private readonly lastCommitAt: Gauge;
  private readonly reconnects: Counter<'cause'>;
  private readonly faults: Counter<'code'>;
  private readonly sinkErrors: Counter<'code'>;
  private readonly state: Gauge<'state'>;
  private readonly snapshotRead: Gauge<'table'>;
  private readonly snapshotEstimated: Gauge<'table'>;
  private readonly snapshotDone: Gauge<'table'>;
  private readonly lagBytes: Gauge<'slot'>;
  private readonly lagSeconds: Gauge<'slot'>;
  private readonly retainedWal: Gauge<'slot'>;
  private readonly safeWalSize: Gauge<'slot'>;
  private readonly maxWalKeep: Gauge<'slot'>;
  private readonly walStatus: Gauge<'slot' | 'status'>;
  private readonly slotActive: Gauge<'slot'>;
  private readonly slotExists: Gauge<'slot'>;
  private readonly alertLevel: Gauge<'alert'>;
  /** The `events` of the last checkpoint-stored of this attempt (it counts from 0 per attempt). */
  private deliveredInAttempt = 0;

  constructor(options: MetricsOptions = {}) {
    const registers = [this.registry];
    const counter = <L extends string>(name: string, help: string, labelNames: readonly L[] = []): Counter<L> =>
      new Counter<L>({ name, help, labelNames, registers });
    const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[] = []): Gauge<L> =>
      new Gauge<L>({ name, help, labelNames, registers });
    const histogram = (name: string, help: string, buckets: number[]): Histogram =>
      new Histogram({ name, help, buckets, registers });

    this.events = counter('pgcdc_events_total', 'Change events made durable in the sink, by table and op.', [
      'table',
      'op',
    ]);
    this.delivered = counter(
      'pgcdc_events_delivered_total',
      'Events durable in the sink with their checkpoint stored.',
    );
    this.sinkBytes = counter('pgcdc_sink_bytes_total', 'Bytes of event lines written to the sink.');
    this.batches = counter('pgcdc_batches_total', 'Batches written to the sink.');
    this.sinkWrite = histogram(
      'pgcdc_sink_write_duration_seconds',
      'Latency of one batch write to the sink.',
      WRITE_BUCKETS,
    );
    this.commitToDurable = histogram(
      'pgcdc_commit_to_durable_seconds',
      "Per batch: from the commit of its first transaction on the server to the batch's durability in the sink.",
      COMMIT_TO_DURABLE_BUCKETS,
    );
    this.checkpointDuration = histogram(
      'pgcdc_checkpoint_duration_seconds',
      'Latency of storing one checkpoint in the offset store.',
      WRITE_BUCKETS,
    );
    this.checkpoints = counter('pgcdc_checkpoints_total', 'Checkpoints stored.');
    this.checkpointAt = gauge('pgcdc_checkpoint_last_stored_timestamp_seconds', 'When the last checkpoint was stored.');
    this.lastCommitAt = gauge(
      'pgcdc_checkpoint_last_commit_timestamp_seconds',
      'Commit time of the last transaction covered by the stored checkpoint.',
    );
    this.reconnects = counter('pgcdc_reconnects_total', 'In-process restarts scheduled after a fault, by its code.', [
      'cause',
    ]);
    this.faults = counter('pgcdc_faults_total', 'Faults detected, by error code.', ['code']);
    this.sinkErrors = counter('pgcdc_sink_errors_total', 'Sink failures (faults with a SINK_ code), by code.', [
      'code',
    ]);
    this.state = gauge('pgcdc_engine_state', "The engine's state: 1 for the current one, 0 for the others.", ['state']);
    this.snapshotRead = gauge('pgcdc_snapshot_rows_read', 'Rows a snapshot read so far, per table.', ['table']);
    this.snapshotEstimated = gauge(
      'pgcdc_snapshot_rows_estimated',
      "The planner's estimate of a snapshotted table's rows (absent when unknown).",
      ['table'],
    );
    this.snapshotDone = gauge(
      'pgcdc_snapshot_table_done',
      'Whether the snapshot read the table to its end (1) or not (0).',
      ['table'],
    );
    this.lagBytes = gauge('pgcdc_replication_lag_bytes', 'WAL written that the capture has not confirmed.', ['slot']);
    this.lagSeconds = gauge(
      'pgcdc_replication_lag_seconds',
      'Seconds since the commit of the last transaction made durable, while WAL waits behind it.',
      ['slot'],
    );
    this.retainedWal = gauge('pgcdc_slot_retained_wal_bytes', "WAL the slot keeps on the server's disk.", ['slot']);
    this.safeWalSize = gauge(
      'pgcdc_slot_safe_wal_size_bytes',
      'WAL that may still be written before the slot risks invalidation (absent when unlimited).',
      ['slot'],
    );
    this.maxWalKeep = gauge('pgcdc_slot_max_wal_keep_size_bytes', 'max_slot_wal_keep_size (absent when unlimited).', [
      'slot',
    ]);
    this.walStatus = gauge('pgcdc_slot_wal_status', "The slot's wal_status: 1 for the current one.", [
      'slot',
      'status',
    ]);
    this.slotActive = gauge('pgcdc_slot_active', 'Whether a walsender uses the slot (1) or not (0).', ['slot']);
    this.slotExists = gauge('pgcdc_slot_exists', 'Whether the slot exists (1) or not (0).', ['slot']);
    this.alertLevel = gauge('pgcdc_alert_level', 'Alert level per watched value: 0 ok, 1 warning, 2 critical.', [
      'alert',
    ]);
    for (const state of ENGINE_STATES) this.state.set({ state }, 0);
    if (options.process !== false) collectDefaultMetrics({ register: this.registry, prefix: 'pgcdc_' });
  }

  /** The text of every metric, in Prometheus's text exposition format. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** The Content-Type of `text()`. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** See EngineEvents: never throws (a metric that cannot be updated is skipped). */
  emit(event: EngineEvent): void {
    try {
      this.apply(event);
    } catch {
      // A metric update failed (an invalid label value, say): the capture is never told.
    }
  }

  /** See HealthListener: never throws. */
  health(sample: SlotSample, alerts: readonly AlertState[]): void {
    try {
      this.applyHealth(sample, alerts);
    } catch {
      // As in emit.
    }
  }

  private apply(event: EngineEvent): void {
    switch (event.type) {
      case 'state':
        for (const state of ENGINE_STATES) this.state.set({ state }, state === event.state ? 1 : 0);
        if (event.state === 'starting') this.deliveredInAttempt = 0;
        return;
      case 'fault':
        this.faults.inc({ code: event.code });
        if (event.code.startsWith('SINK_')) this.sinkErrors.inc({ code: event.code });
        return;
      case 'retry-scheduled':
        this.reconnects.inc({ cause: event.cause });
        return;
      case 'batch-written':
        this.batchWritten(event);
        return;
      case 'checkpoint-stored':
        this.checkpoints.inc();
        this.checkpointAt.set(Date.now() / 1000);
        if (event.durationMs !== undefined) this.checkpointDuration.observe(event.durationMs / 1000);
        if (event.lastCommitAt !== undefined) this.lastCommitAt.set(event.lastCommitAt / 1000);
        if (event.events > this.deliveredInAttempt) {
          this.delivered.inc(event.events - this.deliveredInAttempt);
          this.deliveredInAttempt = event.events;
        }
        return;
      case 'snapshot-progress': {
        const labels = { table: event.table };
        this.snapshotRead.set(labels, event.rows);
        if (event.total !== undefined) this.snapshotEstimated.set(labels, event.total);
        this.snapshotDone.set(labels, event.done ? 1 : 0);
        return;
      }
      case 'status-sent':
        return;
    }
  }

  private batchWritten(event: BatchWritten): void {
    this.batches.inc();
    this.sinkBytes.inc(event.bytes);
    this.sinkWrite.observe(event.writeMs / 1000);
    for (const count of event.counts) this.events.inc({ table: count.table, op: count.op }, count.count);
    // Server and local clocks may disagree a little: a negative span counts as 0.
    if (event.firstCommitAt !== undefined)
      this.commitToDurable.observe(Math.max(0, event.durableAt - event.firstCommitAt) / 1000);
  }

  private applyHealth(sample: SlotSample, alerts: readonly AlertState[]): void {
    const slot = { slot: sample.slot };
    setOrRemove(this.lagBytes, slot, sample.lagBytes);
    setOrRemove(this.lagSeconds, slot, sample.lagSeconds);
    setOrRemove(this.retainedWal, slot, sample.retainedWalBytes);
    setOrRemove(this.safeWalSize, slot, sample.safeWalSizeBytes);
    setOrRemove(this.maxWalKeep, slot, sample.maxSlotWalKeepSizeBytes);
    for (const status of WAL_STATUSES) {
      const labels = { slot: sample.slot, status };
      if (sample.walStatus === undefined) this.walStatus.remove(labels);
      else this.walStatus.set(labels, status === sample.walStatus ? 1 : 0);
    }
    this.slotActive.set(slot, sample.active ? 1 : 0);
    this.slotExists.set(slot, sample.exists ? 1 : 0);
    for (const alert of alerts) this.alertLevel.set({ alert: alert.name }, ALERT_LEVEL[alert.level]);
  }
}

/** Sets the gauge's series to `value`, or removes it when the value is not known (absent beats a false 0). */
function setOrRemove(gauge: Gauge<'slot'>, labels: { slot: string }, value: number | undefined): void {
  if (value === undefined) gauge.remove(labels);
  else gauge.set(labels, value);
}
