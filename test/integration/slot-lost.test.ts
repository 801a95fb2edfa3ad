/**
 * The lost-slot policy (lifecycle/lost-slot.ts, docs/recovery.md#lost-slots) against real servers.
 * A capture streams `acct` (500 rows) until its checkpoint holds an xid horizon past the rows'
 * writes, stops, and the slot is lost while pgcdc is down (dropped, or invalidated by
 * max_slot_wal_keep_size) while rows are inserted, updated and deleted. Then:
 * - `--on-lost fail` (the default) refuses with exit 1 and one line naming the next step;
 * - `--on-lost resnapshot` creates a new slot and re-reads online only the rows written since the
 *   horizon (printed: re-read of total), marked `source.snapshot: "recovery"`; the replay equals
 *   the source but for the gap's deletes, which a re-read cannot see;
 * - a SIGKILL during the recovery, then a restart, completes it exactly (the request is stored);
 * - a new cluster (another system identifier, the same schema) re-reads every row.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import pg from 'pg';
import {
  eventually,
  freshDatabase,
  onTeardown,
  startCluster,
  TEST_MAJOR,
  testServer,
  type TestDatabase,
} from '../harness/pg.ts';
import { awaitStreaming, runPgcdc, startPgcdc, type DeliveredEvent, type PgcdcProcess } from '../harness/cli.ts';
import { storedProgress } from '../harness/snapshots.ts';
import { logRecords } from '../harness/process.ts';
import { safeWal, slotLimitDatabase } from '../harness/slot-limit.ts';
import {
  acctVerdict as verdict,
  captureThenDropSlot,
  captureUntilHorizon,
  HORIZON_ENV as ENV,
  killMidRecovery,
  lostSlotArgs as args,
  lostSlotWorkdir,
  waitRecovered,
} from '../harness/slot-lost.ts';

const ROWS = 500;
const RESNAPSHOT = ['--on-lost', 'resnapshot'];
const workdir = (): Promise<string> => lostSlotWorkdir('pgcdc-slot-lost-');

async function createAcct(sql: pg.Client, rows = ROWS): Promise<void> {
  await sql.query('create table if not exists acct (id int primary key, n int not null)');
  await sql.query(`insert into acct select g, g from generate_series(1, ${rows}) g`);
}

/** The gap: 10 inserts, 10 updates and 5 deletes while no slot keeps the changes. Returns the deleted keys. */
async function changeInGap(sql: pg.Client, base = ROWS): Promise<number[]> {
  await sql.query(`insert into acct select g, -g from generate_series(${base + 1}, ${base + 10}) g`);
  await sql.query('update acct set n = n + 1000 where id between 1 and 10');
  await sql.query('delete from acct where id between 100 and 104');
  return [100, 101, 102, 103, 104];
}

/** Runs a recovery to its end: the stored incremental snapshot done and everything delivered. */
async function recover(db: TestDatabase, dir: string, extra: readonly string[] = []): Promise<PgcdcProcess> {
  const proc = startPgcdc(args(db, dir, [...RESNAPSHOT, ...extra]), ENV);
  await awaitStreaming(proc, 'pgcdc streaming');
  await waitRecovered(db.sql, dir, proc);
  return proc;
}

function recoveryWarnings(proc: PgcdcProcess): string[] {
  return logRecords(proc.stderr())
    .filter((r) => r.level === 40 && r.msg.startsWith('onLost resnapshot'))
    .map((r) => r.msg);
}

function reread(events: readonly DeliveredEvent[]): DeliveredEvent[] {
  return events.filter((e) => e.value.op === 'r' && e.value.source?.snapshot === 'recovery');
}

/** Asserts the targeted re-read: at least every changed row, fewer than all; prints the figure. */
function assertTargeted(events: readonly DeliveredEvent[], changed: readonly number[], total: number, what: string) {
  const ids = new Set(reread(events).map((e) => Number((e.key as { id: number }).id)));
  for (const id of changed) assert.ok(ids.has(id), `${what}: changed row ${id} re-read`);
  assert.ok(ids.size < total, `${what}: re-read ${ids.size} of ${total}, fewer than all`);
  process.stderr.write(`${what}: re-read ${ids.size} of ${total} rows (changed in the gap: ${changed.length})\n`);
}

const CHANGED = [...Array.from({ length: 10 }, (_, i) => ROWS + 1 + i), ...Array.from({ length: 10 }, (_, i) => i + 1)];

test('a dropped slot: fail refuses in one line; resnapshot re-reads only what the gap changed', async () => {
  const db = await freshDatabase();
  await createAcct(db.sql);
  const dir = await workdir();
  await captureThenDropSlot(db, dir, RESNAPSHOT);
  const deleted = await changeInGap(db.sql);

  const refused = await runPgcdc(args(db, dir), ENV);
  const lines = refused.stderr
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('pgcdc:'));
  assert.equal(refused.code, 1, refused.stderr);
  assert.equal(lines.length, 1, refused.stderr);
  assert.match(lines[0] ?? '', /^pgcdc: error: replication slot .* is gone.*--on-lost resnapshot.*\[SLOT_MISSING\]$/);

  const proc = await recover(db, dir);
  const warnings = recoveryWarnings(proc);
  assert.equal(warnings.length, 1, proc.stderr());
  assert.match(warnings[0] ?? '', /SLOT_MISSING.*written since transaction \d+.*deleted in the gap cannot be seen/);
  const result = await verdict(db.sql, dir, `${db.name}.public.acct`);
  assert.deepEqual(
    { lost: result.lost, mismatched: result.mismatched, extra: result.extra, duplicates: result.duplicates },
    { lost: 0, mismatched: 0, extra: deleted.length, duplicates: 0 },
  );
  assertTargeted(result.events, CHANGED, ROWS + 10 - deleted.length, 'dropped slot');
});

test('a slot invalidated by max_slot_wal_keep_size: resnapshot recovers the gap', async (t) => {
  if (TEST_MAJOR < 13) {
    t.skip('max_slot_wal_keep_size needs PostgreSQL 13+');
    return;
  }
  const db = await slotLimitDatabase();
  await db.sql.query(`insert into acct select g, g from generate_series(1, ${ROWS}) g`);
  await db.sql.query('alter table acct alter column balance set not null');
  await db.sql.query('alter table acct rename column balance to n');
  const dir = await workdir();
  await captureUntilHorizon(db, dir, RESNAPSHOT);
  const deleted = await changeInGap(db.sql);
  await eventually(
    async () => {
      await db.sql.query(`insert into filler select repeat(md5(g::text), 32768) from generate_series(1, 8) g`);
      await db.sql.query('checkpoint');
      return (await safeWal(db.sql, `s_${db.name}`)).status === 'lost' ? true : undefined;
    },
    'the slot lost',
    120_000,
  );
  const refused = await runPgcdc(args(db, dir), ENV);
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, /^pgcdc: error: .*invalidated.*--on-lost resnapshot.*\[SLOT_LOST\]$/m);

  const proc = await recover(db, dir);
  assert.match(recoveryWarnings(proc)[0] ?? '', /SLOT_LOST/);
  const result = await verdict(db.sql, dir, `${db.name}.public.acct`);
  assert.deepEqual(
    { lost: result.lost, mismatched: result.mismatched, extra: result.extra, duplicates: result.duplicates },
    { lost: 0, mismatched: 0, extra: deleted.length, duplicates: 0 },
  );
  assertTargeted(result.events, CHANGED, ROWS + 10 - deleted.length, 'invalidated slot');
});

test('a SIGKILL during the recovery: the restart continues it (stored) and ends exact', async () => {
  const db = await freshDatabase();
  const total = 3000;
  await createAcct(db.sql, total);
  const dir = await workdir();
  await captureThenDropSlot(db, dir, RESNAPSHOT);
  // Many changed rows read in small chunks: the recovery is still running when it is killed.
  await db.sql.query('update acct set n = n + 1 where id <= 2000');
  const deleted = await changeInGap(db.sql, total);
  const offsets = path.join(dir, 'offsets.json');

  const { killed: first, midway } = await killMidRecovery(db, dir, RESNAPSHOT);
  assert.equal(recoveryWarnings(first).length, 1, first.stderr());
  const id = (await storedProgress(offsets))?.incremental?.id;

  const second = await recover(db, dir, ['--snapshot-chunk-size', '20']);
  assert.equal(recoveryWarnings(second).length, 0, 'the restart resumes the stored recovery, it starts no new one');
  assert.equal((await storedProgress(offsets))?.incremental?.id, id, 'the same recovery snapshot went on');
  const result = await verdict(db.sql, dir, `${db.name}.public.acct`);
  assert.deepEqual(
    { lost: result.lost, mismatched: result.mismatched, extra: result.extra, duplicates: result.duplicates },
    { lost: 0, mismatched: 0, extra: deleted.length, duplicates: 0 },
  );
  process.stderr.write(
    `SIGKILL during recovery: killed after ${midway.emitted} re-read rows; ` +
      `${reread(result.events).length} re-read of ${total + 10 - deleted.length} in all\n`,
  );
});

test('a new cluster (another system identifier, the same schema): every row is re-read', async () => {
  const db = await freshDatabase();
  await createAcct(db.sql);
  const dir = await workdir();
  await captureUntilHorizon(db, dir, RESNAPSHOT);

  // The same database name and schema on a fresh cluster, with rows that differ from the old ones.
  await testServer();
  const cluster = await startCluster();
  const admin = new pg.Client({ connectionString: cluster.url('postgres') });
  await admin.connect();
  await admin.query(`create database ${db.name}`);
  await admin.end();
  const sql = new pg.Client({ connectionString: cluster.url(db.name) });
  sql.on('error', () => undefined);
  await sql.connect();
  onTeardown(() => sql.end().catch(() => undefined));
  await createAcct(sql, 400);
  await sql.query('update acct set n = -n where id <= 50');
  const moved = { url: cluster.url(db.name), name: db.name };

  const refused = await runPgcdc(args(moved, dir), ENV);
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, /^pgcdc: error: the server is a different PostgreSQL cluster.*\[SYSTEM_CHANGED\]$/m);

  const proc = startPgcdc(args(moved, dir, RESNAPSHOT), ENV);
  await awaitStreaming(proc, 'pgcdc streaming');
  await waitRecovered(sql, dir, proc);
  assert.match(recoveryWarnings(proc)[0] ?? '', /SYSTEM_CHANGED.*every row of 1 table.*another cluster/);
  const result = await verdict(sql, dir, `${db.name}.public.acct`);
  // The old cluster's rows 401..500 are not on the new one: a re-read cannot remove them.
  assert.deepEqual(
    { lost: result.lost, mismatched: result.mismatched, extra: result.extra, duplicates: result.duplicates },
    { lost: 0, mismatched: 0, extra: 100, duplicates: 0 },
  );
  assert.equal(reread(result.events).length, 400, 'every row of the new cluster re-read');
  process.stderr.write(`new cluster: re-read 400 of 400 rows\n`);
});
