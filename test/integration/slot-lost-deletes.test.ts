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
import type pg from 'pg';
import { freshDatabase, type TestDatabase } from '../harness/pg.ts';
import { awaitStreaming, runPgcdc, startPgcdc, type DeliveredEvent } from '../harness/cli.ts';
import {
  acctVerdict as verdict,
  captureThenDropSlot,
  HORIZON_ENV as ENV,
  killMidRecovery,
  lostSlotArgs as args,
  lostSlotWorkdir,
  waitRecovered,
} from '../harness/slot-lost.ts';

const EMIT = ['--on-lost', 'resnapshot', '--on-lost-deletes', 'emit'];
const workdir = (): Promise<string> => lostSlotWorkdir('pgcdc-lost-deletes-');

/** `acct` with `rows` rows, streamed until the checkpoint's xid horizon is past them; then the slot dropped. */
async function acctThenDropSlot(db: TestDatabase, dir: string, rows: number): Promise<void> {
  await db.sql.query('create table acct (id int primary key, n int not null)');
  await db.sql.query(`insert into acct select g, g from generate_series(1, ${rows}) g`);
  await captureThenDropSlot(db, dir, EMIT);
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

function recoveryDeletes(events: readonly DeliveredEvent[]): DeliveredEvent[] {
  return events.filter((e) => e.value.op === 'd' && e.value.source?.snapshot === 'recovery');
}

test('a dropped slot, onLostDeletes emit: the gap deletes are emitted and the replay equals the source', async () => {
  const db = await freshDatabase();
  const rows = 500;
  const dir = await workdir();
  await acctThenDropSlot(db, dir, rows);
  const deleted = await changeInGap(db.sql, rows);

  const proc = startPgcdc(args(db, dir, [...EMIT, '--snapshot-chunk-size', '4']), ENV);
  await awaitStreaming(proc, 'pgcdc streaming');
  // Deleted in the gap, inserted again after the new slot's start: it must stay.
  await db.sql.query('insert into acct values (100, 7)');
  await waitRecovered(db.sql, dir, proc);

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
  await acctThenDropSlot(db, dir, rows);
  await db.sql.query('update acct set n = n + 1 where id <= 2000');
  const deleted = await changeInGap(db.sql, rows);

  const { midway } = await killMidRecovery(db, dir, EMIT);

  const second = startPgcdc(args(db, dir, [...EMIT, '--snapshot-chunk-size', '20']), ENV);
  await awaitStreaming(second, 'pgcdc streaming');
  await waitRecovered(db.sql, dir, second);
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
