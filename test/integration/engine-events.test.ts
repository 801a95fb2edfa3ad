/**
 * The engine's events and status on a real capture: the states it goes through, the initial
 * snapshot's progress per table, checkpoints and status updates, and a `status()` whose counts
 * match what the sink holds; the events delivered replay onto the source rows exactly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { freshDatabase, eventually } from '../harness/pg.ts';
import { compareRows, parseLines, replay } from '../harness/cli.ts';
import { MemorySink, MemorySinkStore } from '../harness/memory-sink.ts';
import { parseConfig } from '../../src/config.ts';
import { createLogger } from '../../src/core/log.ts';
import type { EngineEvent } from '../../src/core/engine-events.ts';
import { Capture } from '../../src/lifecycle/engine.ts';
import { parseLsn } from '../../src/protocol/lsn.ts';

test('a capture reports its states, snapshot progress, checkpoints and status updates; status() adds up', async () => {
  const db = await freshDatabase();
  const dir = await mkdtemp(path.join(tmpdir(), 'engine-events-'));
  await db.sql.query('create table items (id int primary key, v text)');
  await db.sql.query(`insert into items select g, 'v' || g from generate_series(1, 50) g`);
  const config = parseConfig({
    source: { url: db.url },
    slot: `s_${db.name}`,
    publication: 'events_pub',
    tables: ['public.items'],
    offsets: path.join(dir, 'offsets.json'),
    statusIntervalMs: 100,
    snapshot: { progress: 'off' },
    log: { level: 'warn', format: 'json' },
  });
  const logged: string[] = [];
  const log = createLogger(
    config.log,
    new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        logged.push(chunk.toString());
        done();
      },
    }),
  );
  const store = new MemorySinkStore();
  const events: EngineEvent[] = [];
  const capture = await Capture.start(config, new MemorySink({ store }), log, { emit: (e) => events.push(e) });
  try {
    await db.sql.query(`insert into items select g, 'w' || g from generate_series(51, 70) g`);
    await db.sql.query(`update items set v = 'u' where id <= 10`);
    await db.sql.query(`delete from items where id > 65`);
    const { rows } = await db.sql.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn');
    const target = parseLsn(rows[0]?.lsn ?? '0/0');
    await eventually(
      () => (parseLsn(capture.status().ackedLsn ?? '0/0') >= target ? true : undefined),
      'the status to show the last change acknowledged',
    );
  } finally {
    await capture.stop();
  }

  const states = events.flatMap((e) => (e.type === 'state' ? [e.state] : []));
  assert.deepEqual(states, ['starting', 'snapshotting', 'streaming', 'stopping', 'stopped']);
  const snapshot = events.filter((e) => e.type === 'snapshot-progress');
  assert.ok(snapshot.length > 0, 'snapshot progress reported');
  assert.ok(snapshot.every((e) => e.table === 'public.items'));
  assert.deepEqual(
    { rows: snapshot.at(-1)?.rows, done: snapshot.at(-1)?.done },
    { rows: 50, done: true },
    'the last report has every row read',
  );
  assert.ok(
    events.some((e) => e.type === 'checkpoint-stored'),
    'checkpoints reported',
  );
  assert.ok(
    events.some((e) => e.type === 'status-sent'),
    'status updates reported',
  );
  assert.ok(!events.some((e) => e.type === 'fault' || e.type === 'retry-scheduled'), logged.join(''));

  const delivered = parseLines(store.events.map((e) => `${e.line}\n`).join(''));
  const reads = delivered.filter((e) => e.value.op === 'r').length;
  assert.equal(reads, 50);
  const status = capture.status();
  assert.equal(status.state, 'stopped');
  assert.equal(status.eventsDelivered, delivered.length - reads, 'streamed events, snapshot reads apart');
  assert.equal(status.retries, 0);
  assert.equal(status.lastFault, undefined);
  assert.deepEqual(
    status.snapshot.map((t) => ({ table: t.table, rows: t.rows, done: t.done })),
    [{ table: 'public.items', rows: 50, done: true }],
  );
  assert.ok(status.checkpointLsn !== undefined && parseLsn(status.checkpointLsn) >= parseLsn(status.ackedLsn ?? ''));

  const result = replay(delivered);
  assert.equal(result.duplicates, 0, 'no event twice');
  const source = await db.sql.query<{ id: number; v: string }>('select id, v from items');
  assert.deepEqual(
    compareRows(
      result.tables.get(`${db.name}.public.items`),
      new Map(source.rows.map((r) => [JSON.stringify({ id: r.id }), r as Record<string, unknown>])),
    ),
    { lost: 0, extra: 0, mismatched: 0 },
  );
});
