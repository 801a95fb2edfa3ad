/** The Metrics listener: engine events and health samples in, Prometheus text out (parsed, never snapshotted). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { register as globalRegistry } from 'prom-client';
import { Metrics } from '../../../src/metrics/registry.ts';
import type { BatchWritten } from '../../../src/core/engine-events.ts';
import type { AlertState, SlotSample } from '../../../src/health/types.ts';
import { parsePrometheus, typesOf, valueOf } from '../../harness/prometheus-text.ts';

function batch(overrides: Partial<BatchWritten> = {}): BatchWritten {
  return {
    type: 'batch-written',
    events: 5,
    bytes: 1000,
    writeMs: 12,
    durableAt: 1_700_000_002_000,
    firstCommitAt: 1_700_000_000_000,
    lastCommitAt: 1_700_000_001_500,
    counts: [
      { table: 'public.a', op: 'c', count: 3 },
      { table: 'public.b', op: 'd', count: 1 },
      { table: '', op: 'other', count: 1 },
    ],
    sample: [],
    ...overrides,
  };
}

function sample(overrides: Partial<SlotSample> = {}): SlotSample {
  return {
    at: new Date().toISOString(),
    slot: 'pgcdc',
    exists: true,
    active: true,
    activePid: 42,
    walStatus: 'reserved',
    safeWalSizeBytes: 1_000_000,
    maxSlotWalKeepSizeBytes: 2_000_000,
    currentLsn: '0/3000000',
    confirmedFlushLsn: '0/2000000',
    restartLsn: '0/1000000',
    lagBytes: 16_777_216,
    lagSeconds: 3.5,
    retainedWalBytes: 33_554_432,
    ...overrides,
  };
}

const alert = (name: AlertState['name'], level: AlertState['level']): AlertState => ({
  name,
  level,
  value: undefined,
  threshold: undefined,
  message: level,
  since: new Date().toISOString(),
});

test('batches count events by table and op, bytes, and observe write and commit-to-durable latencies', async () => {
  const metrics = new Metrics({ process: false });
  metrics.emit(batch());
  metrics.emit(batch({ counts: [{ table: 'public.a', op: 'c', count: 5 }], firstCommitAt: undefined }));
  const samples = parsePrometheus(await metrics.text());
  assert.equal(valueOf(samples, 'pgcdc_events_total', { table: 'public.a', op: 'c' }), 8);
  assert.equal(valueOf(samples, 'pgcdc_events_total', { table: 'public.b', op: 'd' }), 1);
  assert.equal(valueOf(samples, 'pgcdc_events_total', { table: '', op: 'other' }), 1);
  assert.equal(valueOf(samples, 'pgcdc_batches_total'), 2);
  assert.equal(valueOf(samples, 'pgcdc_sink_bytes_total'), 2000);
  assert.equal(valueOf(samples, 'pgcdc_sink_write_duration_seconds_count'), 2);
  assert.equal(valueOf(samples, 'pgcdc_sink_write_duration_seconds_sum'), 0.024);
  assert.equal(valueOf(samples, 'pgcdc_sink_write_duration_seconds_bucket', { le: '0.01' }), 0);
  assert.equal(valueOf(samples, 'pgcdc_sink_write_duration_seconds_bucket', { le: '0.025' }), 2);
  // Only the batch with a commit time is observed: 2 s from its first commit to durable.
  assert.equal(valueOf(samples, 'pgcdc_commit_to_durable_seconds_count'), 1);
  assert.equal(valueOf(samples, 'pgcdc_commit_to_durable_seconds_sum'), 2);
  assert.equal(valueOf(samples, 'pgcdc_commit_to_durable_seconds_bucket', { le: '1' }), 0);
  assert.equal(valueOf(samples, 'pgcdc_commit_to_durable_seconds_bucket', { le: '2.5' }), 1);
});

test('checkpoints: latency histogram, last commit time, and delivered events across attempts', async () => {
  const metrics = new Metrics({ process: false });
  metrics.emit({ type: 'state', state: 'starting' });
  metrics.emit({ type: 'checkpoint-stored', lsn: '0/10', events: 10, lastCommitAt: 1_700_000_000_000, durationMs: 3 });
  metrics.emit({ type: 'checkpoint-stored', lsn: '0/20', events: 25, lastCommitAt: 1_700_000_001_000, durationMs: 4 });
  // A new attempt counts from 0 again.
  metrics.emit({ type: 'state', state: 'starting' });
  metrics.emit({ type: 'checkpoint-stored', lsn: '0/30', events: 5, durationMs: undefined });
  const samples = parsePrometheus(await metrics.text());
  assert.equal(valueOf(samples, 'pgcdc_events_delivered_total'), 30);
  assert.equal(valueOf(samples, 'pgcdc_checkpoints_total'), 3);
  assert.equal(valueOf(samples, 'pgcdc_checkpoint_duration_seconds_count'), 2);
  assert.equal(valueOf(samples, 'pgcdc_checkpoint_duration_seconds_sum'), 0.007);
  assert.equal(valueOf(samples, 'pgcdc_checkpoint_last_commit_timestamp_seconds'), 1_700_000_001);
  assert.ok((valueOf(samples, 'pgcdc_checkpoint_last_stored_timestamp_seconds') ?? 0) > 1_700_000_000);
});

test('faults, sink errors, reconnects by cause and the engine state', async () => {
  const metrics = new Metrics({ process: false });
  metrics.emit({ type: 'state', state: 'streaming' });
  metrics.emit({ type: 'fault', code: 'CONNECTION_LOST', message: 'gone' });
  metrics.emit({ type: 'retry-scheduled', attempt: 1, delayMs: 100, cause: 'CONNECTION_LOST' });
  metrics.emit({ type: 'fault', code: 'SINK_FAILED', message: 'disk full' });
  metrics.emit({ type: 'retry-scheduled', attempt: 2, delayMs: 200, cause: 'SINK_FAILED' });
  metrics.emit({ type: 'retry-scheduled', attempt: 3, delayMs: 400, cause: 'SINK_FAILED' });
  metrics.emit({ type: 'state', state: 'retrying' });
  const samples = parsePrometheus(await metrics.text());
  assert.equal(valueOf(samples, 'pgcdc_faults_total', { code: 'CONNECTION_LOST' }), 1);
  assert.equal(valueOf(samples, 'pgcdc_faults_total', { code: 'SINK_FAILED' }), 1);
  assert.equal(valueOf(samples, 'pgcdc_sink_errors_total', { code: 'SINK_FAILED' }), 1);
  assert.equal(valueOf(samples, 'pgcdc_sink_errors_total', { code: 'CONNECTION_LOST' }), undefined);
  assert.equal(valueOf(samples, 'pgcdc_reconnects_total', { cause: 'CONNECTION_LOST' }), 1);
  assert.equal(valueOf(samples, 'pgcdc_reconnects_total', { cause: 'SINK_FAILED' }), 2);
  const states = samples.filter((s) => s.name === 'pgcdc_engine_state');
  assert.equal(states.length, 6);
  assert.deepEqual(
    states.filter((s) => s.value === 1).map((s) => s.labels['state']),
    ['retrying'],
  );
});

test('snapshot progress per table: rows read, the estimate when known, done', async () => {
  const metrics = new Metrics({ process: false });
  metrics.emit({ type: 'snapshot-progress', table: 'public.a', rows: 500, total: 1000, done: false });
  metrics.emit({ type: 'snapshot-progress', table: 'public.b', rows: 7, total: undefined, done: true });
  const samples = parsePrometheus(await metrics.text());
  assert.equal(valueOf(samples, 'pgcdc_snapshot_rows_read', { table: 'public.a' }), 500);
  assert.equal(valueOf(samples, 'pgcdc_snapshot_rows_estimated', { table: 'public.a' }), 1000);
  assert.equal(valueOf(samples, 'pgcdc_snapshot_table_done', { table: 'public.a' }), 0);
  assert.equal(valueOf(samples, 'pgcdc_snapshot_rows_read', { table: 'public.b' }), 7);
  assert.equal(valueOf(samples, 'pgcdc_snapshot_rows_estimated', { table: 'public.b' }), undefined);
  assert.equal(valueOf(samples, 'pgcdc_snapshot_table_done', { table: 'public.b' }), 1);
});

test('slot samples and alerts: lag, WAL, wal_status, active; unknown values are absent, not 0', async () => {
  const metrics = new Metrics({ process: false });
  metrics.health(sample(), [
    alert('lag_bytes', 'warning'),
    alert('safe_wal_size_bytes', 'critical'),
    alert('slot', 'ok'),
  ]);
  let samples = parsePrometheus(await metrics.text());
  const slot = { slot: 'pgcdc' };
  assert.equal(valueOf(samples, 'pgcdc_replication_lag_bytes', slot), 16_777_216);
  assert.equal(valueOf(samples, 'pgcdc_replication_lag_seconds', slot), 3.5);
  assert.equal(valueOf(samples, 'pgcdc_slot_retained_wal_bytes', slot), 33_554_432);
  assert.equal(valueOf(samples, 'pgcdc_slot_safe_wal_size_bytes', slot), 1_000_000);
  assert.equal(valueOf(samples, 'pgcdc_slot_max_wal_keep_size_bytes', slot), 2_000_000);
  assert.equal(valueOf(samples, 'pgcdc_slot_wal_status', { slot: 'pgcdc', status: 'reserved' }), 1);
  assert.equal(valueOf(samples, 'pgcdc_slot_wal_status', { slot: 'pgcdc', status: 'lost' }), 0);
  assert.equal(valueOf(samples, 'pgcdc_slot_active', slot), 1);
  assert.equal(valueOf(samples, 'pgcdc_slot_exists', slot), 1);
  assert.equal(valueOf(samples, 'pgcdc_alert_level', { alert: 'lag_bytes' }), 1);
  assert.equal(valueOf(samples, 'pgcdc_alert_level', { alert: 'safe_wal_size_bytes' }), 2);
  assert.equal(valueOf(samples, 'pgcdc_alert_level', { alert: 'slot' }), 0);

  // The slot was lost and dropped: what is not known any more disappears.
  metrics.health(
    sample({
      exists: false,
      active: false,
      walStatus: undefined,
      safeWalSizeBytes: undefined,
      lagBytes: undefined,
      lagSeconds: undefined,
      retainedWalBytes: undefined,
    }),
    [alert('slot', 'critical')],
  );
  samples = parsePrometheus(await metrics.text());
  assert.equal(valueOf(samples, 'pgcdc_replication_lag_bytes', slot), undefined);
  assert.equal(valueOf(samples, 'pgcdc_slot_safe_wal_size_bytes', slot), undefined);
  assert.equal(valueOf(samples, 'pgcdc_slot_wal_status', { slot: 'pgcdc', status: 'reserved' }), undefined);
  assert.equal(valueOf(samples, 'pgcdc_slot_exists', slot), 0);
  assert.equal(valueOf(samples, 'pgcdc_alert_level', { alert: 'slot' }), 2);
});

test('names follow Prometheus conventions; process metrics on the own registry, the global one untouched', async () => {
  const metrics = new Metrics();
  const text = await metrics.text();
  const types = typesOf(text);
  assert.ok(types.size > 20);
  for (const [name, type] of types) {
    assert.match(name, /^pgcdc_/);
    // prom-client's own process metrics name a few gauges `_total` (pgcdc_nodejs_active_resources_total).
    if (/^pgcdc_(nodejs|process)_/.test(name)) continue;
    assert.equal(name.endsWith('_total'), type === 'counter', `${name} is a ${type}`);
  }
  assert.equal(types.get('pgcdc_process_cpu_user_seconds_total'), 'counter');
  assert.equal(types.get('pgcdc_commit_to_durable_seconds'), 'histogram');
  assert.match(metrics.contentType, /^text\/plain/);
  assert.doesNotMatch(await globalRegistry.metrics(), /pgcdc_/);
  // Two captures in one process never share a series.
  const other = new Metrics({ process: false });
  other.emit(batch());
  assert.equal(valueOf(parsePrometheus(await metrics.text()), 'pgcdc_batches_total'), 0);
});

test('a metric that cannot be updated never throws at the engine', () => {
  const metrics = new Metrics({ process: false });
  assert.doesNotThrow(() => metrics.emit(batch({ bytes: -1 })));
  assert.doesNotThrow(() => metrics.health(sample(), [{ ...alert('lag_bytes', 'ok'), level: 'bogus' as 'ok' }]));
});
