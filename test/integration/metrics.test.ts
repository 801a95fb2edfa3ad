/**
 * Metrics on a real capture: a run (library/run.ts startRun, the CLI's way) into a JSONL sink with the
 * Metrics registry and the RecentEvents sampler on its engine events, a known workload on two tables, then
 * pgcdc_events_total by table and op checked against what the JSONL files hold, exactly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freshDatabase, eventually } from '../harness/pg.ts';
import { readJsonl } from '../harness/cli.ts';
import { parseConfig } from '../../src/config.ts';
import { createLogger } from '../../src/core/log.ts';
import { startRun } from '../../src/library/run.ts';
import { makeSink } from '../../src/cli/run-command.ts';
import { Metrics } from '../../src/metrics/registry.ts';
import { RecentEvents } from '../../src/metrics/recent-events.ts';
import { parseLsn } from '../../src/protocol/lsn.ts';
import { parsePrometheus, valueOf } from '../harness/prometheus-text.ts';

test('pgcdc_events_total by table and op equals the JSONL output; batches, latencies and recent keys', async () => {
  const db = await freshDatabase();
  const dir = await mkdtemp(path.join(tmpdir(), 'metrics-'));
  try {
    await db.sql.query('create table orders (id int primary key, note text)');
    await db.sql.query('create table items (id int primary key, qty int, secret text)');
    await db.sql.query(`insert into orders select g, 'first' from generate_series(1, 40) g`);
    const config = parseConfig({
      source: { url: db.url },
      slot: `s_${db.name}`,
      publication: 'metrics_pub',
      tables: ['public.orders', 'public.items'],
      offsets: path.join(dir, 'offsets.json'),
      sink: { kind: 'jsonl', out: path.join(dir, 'out') },
      batch: { maxEvents: 50 },
      snapshot: { progress: 'off' },
      log: { level: 'error', format: 'json' },
    });
    const metrics = new Metrics();
    const recent = new RecentEvents({ size: 20 });
    const log = createLogger(config.log);
    const run = startRun(config, () => makeSink(config, log), log, {
      emit: (event) => {
        metrics.emit(event);
        recent.emit(event);
      },
    });
    try {
      await eventually(() => (run.status().state === 'streaming' ? true : undefined), 'the capture to stream');
      // The workload: 120 inserts, 45 updates and 15 deletes on items in several transactions; 25 updates
      // and 10 deletes on orders; one transaction over both tables.
      for (let tx = 0; tx < 6; tx++)
        await db.sql.query(
          `insert into items select g, g, 'secret-value-' || g from generate_series(${tx * 20 + 1}, ${tx * 20 + 20}) g`,
        );
      await db.sql.query('update items set qty = qty + 1 where id <= 45');
      await db.sql.query('delete from items where id > 105');
      await db.sql.query(`update orders set note = 'second' where id <= 25`);
      await db.sql.query('begin');
      await db.sql.query('delete from orders where id > 30');
      await db.sql.query('insert into items values (1000, 1, $1)', ['secret-value-x']);
      await db.sql.query('commit');
      const { rows } = await db.sql.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn');
      const target = parseLsn(rows[0]?.lsn ?? '0/0');
      await eventually(
        () => (parseLsn(run.status().ackedLsn ?? '0/0') >= target ? true : undefined),
        'every change acknowledged',
      );
    } finally {
      await run.stop();
      await run.done;
    }

    // What the sink holds, by table and op.
    const delivered = await readJsonl(path.join(dir, 'out'));
    const expected = new Map<string, number>();
    for (const event of delivered) {
      const key = `${event.value.source.schema}.${event.value.source.table} ${event.value.op}`;
      expected.set(key, (expected.get(key) ?? 0) + 1);
    }
    assert.deepEqual(
      Object.fromEntries([...expected].sort()),
      {
        'public.items c': 121,
        'public.items d': 15,
        'public.items u': 45,
        'public.orders d': 10,
        'public.orders r': 40,
        'public.orders u': 25,
      },
      'the workload as the JSONL holds it',
    );
    const samples = parsePrometheus(await metrics.text());
    const counted = new Map<string, number>();
    for (const s of samples.filter((s) => s.name === 'pgcdc_events_total'))
      counted.set(`${s.labels['table']} ${s.labels['op']}`, s.value);
    assert.deepEqual(Object.fromEntries([...counted].sort()), Object.fromEntries([...expected].sort()));

    const batches = valueOf(samples, 'pgcdc_batches_total') ?? 0;
    assert.ok(batches > 0, 'batches counted');
    assert.equal(valueOf(samples, 'pgcdc_sink_write_duration_seconds_count'), batches);
    assert.ok((valueOf(samples, 'pgcdc_sink_bytes_total') ?? 0) > 0);
    assert.ok((valueOf(samples, 'pgcdc_checkpoint_duration_seconds_count') ?? 0) > 0, 'checkpoint latency observed');
    assert.ok((valueOf(samples, 'pgcdc_commit_to_durable_seconds_count') ?? 0) > 0, 'commit-to-durable observed');
    assert.ok((valueOf(samples, 'pgcdc_checkpoint_last_commit_timestamp_seconds') ?? 0) > 0);
    assert.equal(valueOf(samples, 'pgcdc_events_delivered_total'), delivered.length - 40, 'streamed events');
    assert.equal(valueOf(samples, 'pgcdc_snapshot_rows_read', { table: 'public.orders' }), 40);
    assert.equal(valueOf(samples, 'pgcdc_snapshot_table_done', { table: 'public.orders' }), 1);
    assert.equal(valueOf(samples, 'pgcdc_engine_state', { state: 'stopped' }), 1);
    assert.ok((valueOf(samples, 'pgcdc_process_resident_memory_bytes') ?? 0) > 0, 'process metrics');

    // Recent events: keys, never values.
    const list = recent.list();
    assert.ok(list.length >= 5 && list.length <= Math.min(20, 5 * batches), `${list.length} recent events`);
    const last = list.at(-1);
    assert.deepEqual(
      { table: last?.table, op: last?.op, key: last?.key },
      {
        table: 'public.items',
        op: 'c',
        key: { id: 1000 },
      },
    );
    assert.ok(last?.lsn !== undefined && last.committedAt !== undefined);
    for (const e of list) {
      assert.equal('value' in e, false);
      assert.equal(typeof e.key, 'object');
    }
    assert.doesNotMatch(JSON.stringify(list), /secret-value/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
