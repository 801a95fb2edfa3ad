/**
 * A running capture's /metrics against the server's own views (pg_replication_slots,
 * pg_current_wal_lsn()): events per table and op equal what the workload wrote, and the slot
 * gauges agree with the slot. While pgcdc is stopped the lag grows (`pgcdc status` reads it from the
 * server); restarted, pgcdc delivers the backlog and the lag the metrics show shrinks again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { eventually, freshDatabase, onTeardown, type TestDatabase } from '../harness/pg.ts';
import { captureArgs, lsnValue, runPgcdc, startPgcdc, type PgcdcProcess } from '../harness/cli.ts';
import { logRecords } from '../harness/process.ts';
import { parsePrometheus, valueOf, type PromSample } from '../harness/prometheus-text.ts';

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-operate-'));
  onTeardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function run(db: TestDatabase, dir: string): PgcdcProcess {
  return startPgcdc(
    captureArgs(db, dir, 'public.t', ['--config', path.join(dir, 'pgcdc.yaml'), '--http', '127.0.0.1:0']),
  );
}

async function baseUrl(proc: PgcdcProcess): Promise<string> {
  const listen = await eventually(
    () => logRecords(proc.stderr()).find((r) => r.msg.startsWith('HTTP server on '))?.listen,
    `the HTTP server start line (pgcdc said: ${proc.stderr().slice(-1500)})`,
  );
  return `http://${String(listen)}`;
}

async function metrics(base: string): Promise<PromSample[]> {
  const response = await fetch(`${base}/metrics`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return parsePrometheus(await response.text());
}

interface SlotView {
  readonly current: bigint;
  readonly confirmed: bigint;
  readonly restart: bigint;
}

async function slotView(sql: pg.Client, slot: string): Promise<SlotView> {
  const { rows } = await sql.query<{ current: string; confirmed: string; restart: string }>(
    `select pg_current_wal_lsn()::text as current, confirmed_flush_lsn::text as confirmed, ` +
      `restart_lsn::text as restart from pg_replication_slots where slot_name = $1`,
    [slot],
  );
  const row = rows[0];
  assert.ok(row !== undefined, `slot ${slot} exists`);
  return { current: lsnValue(row.current), confirmed: lsnValue(row.confirmed), restart: lsnValue(row.restart) };
}

/** The health sample behind /status, with its positions. */
interface Sample {
  readonly at: string;
  readonly currentLsn: string;
  readonly confirmedFlushLsn: string;
  readonly restartLsn: string;
  readonly lagBytes: number;
  readonly retainedWalBytes: number;
}

async function statusSample(base: string): Promise<Sample | undefined> {
  const body = (await (await fetch(`${base}/status`)).json()) as { health: { sample: Sample } | null };
  return body.health?.sample;
}

test('/metrics agrees with pg_replication_slots; lag grows while pgcdc is stopped, shrinks once it runs', async () => {
  const db = await freshDatabase();
  const slot = `s_${db.name}`;
  await db.sql.query('create table t (id int primary key, note text)');
  const dir = await tempDir();
  await writeFile(path.join(dir, 'pgcdc.yaml'), 'alerts:\n  intervalMs: 200\n');

  const first = run(db, dir);
  const base = await baseUrl(first);
  await eventually(() => (first.stderr().includes('"msg":"streaming"') ? true : undefined), 'streaming');
  // A workload: 300 inserts in 30 transactions, 100 updates, 40 deletes.
  for (let i = 0; i < 30; i++)
    await db.sql.query(`insert into t select g, 'n' from generate_series($1::int, $1::int + 9) g`, [i * 10 + 1]);
  await db.sql.query(`update t set note = 'u' where id <= 100`);
  await db.sql.query(`delete from t where id > 260`);
  const counted = await eventually(async () => {
    const samples = await metrics(base);
    const c = valueOf(samples, 'pgcdc_events_total', { table: 'public.t', op: 'c' });
    const u = valueOf(samples, 'pgcdc_events_total', { table: 'public.t', op: 'u' });
    const d = valueOf(samples, 'pgcdc_events_total', { table: 'public.t', op: 'd' });
    return c === 300 && u === 100 && d === 40 ? samples : undefined;
  }, 'pgcdc_events_total: 300 c, 100 u, 40 d');
  assert.ok((valueOf(counted, 'pgcdc_batches_total') ?? 0) > 0);
  assert.ok((valueOf(counted, 'pgcdc_sink_bytes_total') ?? 0) > 0);
  assert.equal(valueOf(counted, 'pgcdc_engine_state', { state: 'streaming' }), 1);

  // The slot gauges come from one sample; /status shows that sample's positions. Both agree with the
  // server's views: the sample's positions lie between the views read before and after it, and the
  // gauges are the distances between them.
  const before = await slotView(db.sql, slot);
  // A sample read after that view: its slot positions (read after its `at`, same clock) and its WAL
  // position cannot be older than the view's.
  const beforeAt = Date.now();
  const { sample, samples } = await eventually(async () => {
    const s = await statusSample(base);
    if (s === undefined || Date.parse(s.at) <= beforeAt || lsnValue(s.currentLsn) < before.current) return undefined;
    const m = await metrics(base);
    const again = await statusSample(base);
    // The same sample on both sides of the metrics read: the gauges are that sample's.
    return again?.at === s.at ? { sample: s, samples: m } : undefined;
  }, 'a health sample taken after the workload');
  const after = await slotView(db.sql, slot);
  const current = lsnValue(sample.currentLsn);
  const confirmed = lsnValue(sample.confirmedFlushLsn);
  const restart = lsnValue(sample.restartLsn);
  assert.ok(before.current <= current && current <= after.current, 'current WAL between the two views');
  assert.ok(before.confirmed <= confirmed && confirmed <= after.confirmed, 'confirmed LSN between the two views');
  assert.ok(before.restart <= restart && restart <= after.restart, 'restart LSN between the two views');
  assert.equal(sample.lagBytes, Number(current - confirmed));
  assert.equal(sample.retainedWalBytes, Number(current - restart));
  assert.equal(valueOf(samples, 'pgcdc_replication_lag_bytes', { slot }), sample.lagBytes);
  assert.equal(valueOf(samples, 'pgcdc_slot_retained_wal_bytes', { slot }), sample.retainedWalBytes);
  assert.equal(valueOf(samples, 'pgcdc_slot_exists', { slot }), 1);
  assert.equal(valueOf(samples, 'pgcdc_slot_active', { slot }), 1);
  assert.equal(valueOf(samples, 'pgcdc_alert_level', { alert: 'lag_bytes' }), 0);

  first.kill('SIGTERM');
  assert.equal(await first.exited, 0, first.stderr());

  // Stopped: 20,000 rows of backlog. The slot's lag grows by at least their WAL.
  const stoppedAt = await slotView(db.sql, slot);
  await db.sql.query(`insert into t select g, repeat('w', 100) from generate_series(1000, 20999) g`);
  const grown = await slotView(db.sql, slot);
  const backlog = Number(grown.current - stoppedAt.current);
  assert.ok(backlog > 2_000_000, `20,000 rows of WAL (${backlog} bytes)`);
  const stopped = await runPgcdc([
    'status',
    '--config',
    path.join(dir, 'pgcdc.yaml'),
    '--source',
    db.url,
    '--slot',
    slot,
    '--offsets',
    path.join(dir, 'offsets.json'),
    '--json',
  ]);
  const report = JSON.parse(stopped.stdout) as { sample: { lagBytes: number }; process: { running: boolean } };
  assert.equal(report.process.running, false);
  assert.ok(report.sample.lagBytes >= backlog, `status: lag ${report.sample.lagBytes} >= the backlog ${backlog}`);

  // Restarted: the backlog is delivered and the lag the metrics show shrinks below it.
  const second = run(db, dir);
  const base2 = await baseUrl(second);
  const shrunk = await eventually(async () => {
    const m = await metrics(base2);
    const c = valueOf(m, 'pgcdc_events_total', { table: 'public.t', op: 'c' });
    const lag = valueOf(m, 'pgcdc_replication_lag_bytes', { slot });
    return c === 20_000 && lag !== undefined && lag < backlog / 10 ? lag : undefined;
  }, 'the 20,000 backlog events counted and the lag shrunk');
  assert.ok(shrunk < report.sample.lagBytes);
  const view = await slotView(db.sql, slot);
  assert.ok(view.confirmed >= grown.current, 'the slot confirmed past the backlog');
  second.kill('SIGTERM');
  assert.equal(await second.exited, 0, second.stderr());
});
