/**
 * `onLostDeletes: emit` (docs/recovery.md#lost-slots, snapshot/recovery-deletes.ts) against a real
 * server: the slot is dropped while pgcdc is stopped, rows are inserted, updated and deleted in the
 * gap, and `--on-lost resnapshot --on-lost-deletes emit` recovers. The JSONL output replayed onto an
 * empty map then equals the source exactly (the gap's deletes emitted, marked recovery), including
 * after a SIGKILL in the middle of the recovery, and a key deleted in the gap and inserted again
 * after the new slot's start stays present. Another sink than JSONL is refused in one line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { eventually, freshDatabase, onTeardown, type TestDatabase } from '../harness/pg.ts';
import {
  captureArgs,
  compareRows,
  readJsonl,
  replay,
  runPgcdc,
  startPgcdc,
  type DeliveredEvent,
  type PgcdcProcess,
} from '../harness/cli.ts';
import { caughtUp, incrementalDone, storedProgress } from '../harness/snapshots.ts';
import { awaitStreaming } from '../harness/kafka-workload.ts';
import { readOffsets } from '../harness/offsets.ts';

const ENV = { PGCDC_TEST_HORIZON_INTERVAL_MS: '100' };
const EMIT = ['--on-lost', 'resnapshot', '--on-lost-deletes', 'emit'];

async function workdir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-lost-deletes-'));
  onTeardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(path.join(dir, 'pgcdc.yaml'), 'heartbeat:\n  interval: 200\n');
  return dir;
}

function args(db: { url: string; name: string }, dir: string, extra: readonly string[] = []): string[] {
  return captureArgs(db, dir, 'public.acct', ['-c', path.join(dir, 'pgcdc.yaml'), ...extra]);
}

async function nextXid(sql: pg.Client): Promise<bigint> {
  const { rows } = await sql.query<{ x: string }>(`select txid_snapshot_xmax(txid_current_snapshot())::text as x`);
  return BigInt(rows[0]?.x ?? '0');
}

async function stop(proc: PgcdcProcess): Promise<void> {
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
}

/** Streams the table until the checkpoint's xid horizon is past its rows; stops cleanly; drops the slot. */
async function captureThenDropSlot(db: TestDatabase, dir: string, rows: number): Promise<void> {
  await db.sql.query('create table acct (id int primary key, n int not null)');
  await db.sql.query(`insert into acct select g, g from generate_series(1, ${rows}) g`);
  const past = await nextXid(db.sql);
  const proc = startPgcdc(args(db, dir, EMIT), ENV);
  await awaitStreaming(proc, 'pgcdc streaming');
  const offsets = path.join(dir, 'offsets.json');
  await eventually(
    async () => {
      const horizon = (await readOffsets(offsets).catch(() => undefined))?.xidHorizon;
      return typeof horizon === 'string' && BigInt(horizon) >= past && (await caughtUp(db.sql, offsets))
        ? true
        : undefined;
    },
    'a stored xid horizon past the loaded rows',
    90_000,
  );
  await stop(proc);
  await db.sql.query('select pg_drop_replication_slot($1)', [`s_${db.name}`]);
}

/**
 * The gap: 10 inserts, 10 updates and deletes spread over the key range. Returns the deleted keys the
 * output held (one more key, inserted and deleted in the gap, never reached it: it needs no delete).
 */
async function changeInGap(sql: pg.Client, rows: number): Promise<number[]> {
  await sql.query(`insert into acct select g, -g from generate_series(${rows + 1}, ${rows + 10}) g`);
  await sql.query('update acct set n = n + 1000 where id between 1 and 10');
  // Deletes at the start, in the middle, among the updated rows and at the end of the key range.
  const deleted = [3, 100, 101, 102, 103, 104, Math.floor(rows / 2), rows, rows + 10];
  await sql.query('delete from acct where id = any($1)', [deleted]);
  return deleted.filter((id) => id <= rows);
}

async function waitRecovered(db: TestDatabase, dir: string, proc: PgcdcProcess): Promise<void> {
  const offsets = path.join(dir, 'offsets.json');
  await eventually(
    async () =>
      incrementalDone(await storedProgress(offsets)) && (await caughtUp(db.sql, offsets)) ? true : undefined,
    'the recovery done',
    180_000,
  );
  await stop(proc);
}

async function verdict(sql: pg.Client, dir: string, topic: string) {
  const events = await readJsonl(path.join(dir, 'events'));
  const replayed = replay(events);
  const { rows } = await sql.query<{ id: number; n: number }>('select id, n from acct');
  const source = new Map(rows.map((r) => [JSON.stringify({ id: r.id }), { id: r.id, n: r.n }]));
  return { events, duplicates: replayed.duplicates, ...compareRows(replayed.tables.get(topic), source) };
}

function recoveryDeletes(events: readonly DeliveredEvent[]): DeliveredEvent[] {
  return events.filter((e) => e.value.op === 'd' && e.value.source?.snapshot === 'recovery');
}

test('a dropped slot, onLostDeletes emit: the gap deletes are emitted and the replay equals the source', async () => {
  const db = await freshDatabase();
  const rows = 500;
  const dir = await workdir();
  await captureThenDropSlot(db, dir, rows);
  const deleted = await changeInGap(db.sql, rows);

  const proc = startPgcdc(args(db, dir, [...EMIT, '--snapshot-chunk-size', '4']), ENV);
  await awaitStreaming(proc, 'pgcdc streaming');
  // Deleted in the gap, inserted again after the new slot's start: it must stay.
  await db.sql.query('insert into acct values (100, 7)');
  await waitRecovered(db, dir, proc);

  const result = await verdict(db.sql, dir, `${db.name}.public.acct`);
  assert.deepEqual(
    { lost: result.lost, mismatched: result.mismatched, extra: result.extra, duplicates: result.duplicates },
    { lost: 0, mismatched: 0, extra: 0, duplicates: 0 },
  );
  const { rows: back } = await db.sql.query<{ n: number }>('select n from acct where id = 100');
  assert.equal(back[0]?.n, 7, 'the key re-inserted after the new slot started is present');
  const emitted = recoveryDeletes(result.events);
  const keys = new Set(emitted.map((e) => Number((e.key as { id: number }).id)));
  // 100 may or may not get a delete (before its re-insert streamed, or dropped by it): it ends present.
  for (const id of deleted.filter((k) => k !== 100)) assert.ok(keys.has(id), `a recovery delete of ${id}`);
  for (const id of keys) assert.ok(deleted.includes(id), `no delete of a key the source still has (${id})`);
  for (const event of emitted) {
    assert.match(event.id, /^[0-9A-F]+\/[0-9A-F]+:i\d+:0:\d+$/, 'a recovery event id');
    assert.equal(event.value.before, null);
    assert.equal(event.value.after, null);
  }
  process.stderr.write(
    `onLostDeletes emit, dropped slot: ${emitted.length} recovery deletes for ${deleted.length} keys the output held ` +
      `and the gap deleted (one re-inserted after the new slot's start); ` +
      `replay: 0 lost, 0 extra, 0 mismatched, 0 duplicate ids\n`,
  );
});

test('onLostDeletes emit: a SIGKILL during the recovery, the restart still emits exactly the gap deletes', async () => {
  const db = await freshDatabase();
  const rows = 3000;
  const dir = await workdir();
  await captureThenDropSlot(db, dir, rows);
  await db.sql.query('update acct set n = n + 1 where id <= 2000');
  const deleted = await changeInGap(db.sql, rows);
  const offsets = path.join(dir, 'offsets.json');

  const first = startPgcdc(args(db, dir, [...EMIT, '--snapshot-chunk-size', '20']), ENV);
  const midway = await eventually(
    async () => {
      const t0 = (await storedProgress(offsets))?.incremental?.tables[0];
      return t0 !== undefined && t0.emitted > 0 && !t0.cursor.done ? t0 : undefined;
    },
    'the recovery stored part of its re-read',
    120_000,
  );
  first.kill('SIGKILL');
  await first.exited;

  const second = startPgcdc(args(db, dir, [...EMIT, '--snapshot-chunk-size', '20']), ENV);
  await awaitStreaming(second, 'pgcdc streaming');
  await waitRecovered(db, dir, second);
  const result = await verdict(db.sql, dir, `${db.name}.public.acct`);
  assert.deepEqual(
    { lost: result.lost, mismatched: result.mismatched, extra: result.extra, duplicates: result.duplicates },
    { lost: 0, mismatched: 0, extra: 0, duplicates: 0 },
  );
  const keys = recoveryDeletes(result.events).map((e) => Number((e.key as { id: number }).id));
  assert.deepEqual(
    [...keys].sort((a, b) => a - b),
    [...deleted].sort((a, b) => a - b),
  );
  process.stderr.write(
    `onLostDeletes emit, SIGKILL after ${midway.emitted} re-read rows: ${keys.length} recovery deletes for ` +
      `${deleted.length} gap deletes; replay: 0 lost, 0 extra, 0 mismatched, 0 duplicate ids\n`,
  );
});

test('onLostDeletes emit with another sink than JSONL is refused in one line', async () => {
  const db = await freshDatabase();
  const dir = await workdir();
  await db.sql.query('create table acct (id int primary key, n int not null)');
  const refused = await runPgcdc([...args(db, dir, EMIT), '--sink', 'stdout'], ENV);
  const lines = refused.stderr
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('pgcdc:'));
  assert.equal(refused.code, 2, refused.stderr);
  assert.equal(lines.length, 1, refused.stderr);
  assert.match(lines[0] ?? '', /onLostDeletes emit .*the sink is stdout.*\[CONFIG_INVALID\]$/);
});
