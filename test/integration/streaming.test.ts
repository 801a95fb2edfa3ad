/**
 * Protocol v2 streaming (`--streaming`, PostgreSQL 14+). The clusters run with
 * logical_decoding_work_mem at 64kB, so big transactions really stream in while they run; each test
 * checks pgcdc's log for the spill of the very transaction under test, so none can pass vacuously.
 * Runs on the default major and on 14, the oldest with streaming; 13 must refuse the flag.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { eventually, startCluster, TEST_MAJOR, type TestDatabase } from '../harness/pg.ts';
import {
  compareRows,
  readJsonl,
  replay,
  runPgcdc,
  startPgcdc,
  type DeliveredEvent,
  type PgcdcProcess,
} from '../harness/cli.ts';
import { logRecords } from '../harness/process.ts';
import { connect, databaseOn, streamingCluster } from '../harness/streaming.ts';

const MAJORS = [...new Set([TEST_MAJOR, 14])].filter((major) => major >= 14);
const SPILLING = 'a large transaction streams in before its commit: spilling it to disk';

function args(db: TestDatabase, dir: string, tables: string, extra: string[] = []): string[] {
  return [
    'run',
    '--source',
    db.url,
    '--slot',
    `s_${db.name}`,
    '--publication',
    'st_pub',
    '--tables',
    tables,
    '--snapshot-mode',
    'never',
    '--out',
    path.join(dir, 'events'),
    '--offsets',
    path.join(dir, 'offsets.json'),
    '--log-format',
    'json',
    '--log-level',
    'debug',
    '--streaming',
    ...extra,
  ];
}

const spillDir = (dir: string): string => path.join(dir, 'offsets.json.spill');

async function slotActive(db: TestDatabase): Promise<true | undefined> {
  const { rowCount } = await db.sql.query(`select 1 from pg_replication_slots where slot_name = $1 and active`, [
    `s_${db.name}`,
  ]);
  return rowCount === 1 ? true : undefined;
}

/** The top-level xid of the transaction open on `client`, as pgoutput sends it (32 bits). */
async function currentXid(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ xid: string }>(
    `select (pg_current_xact_id()::text::bigint % 4294967296)::text as xid`,
  );
  return Number(rows[0]?.xid);
}

/** Resolves once the spill file of `xid` holds at least `bytes`. */
async function spilled(dir: string, xid: number, bytes: number): Promise<true | undefined> {
  const size = await stat(path.join(spillDir(dir), `${xid}.pgoutput`)).then(
    (s) => s.size,
    () => 0,
  );
  return size >= bytes ? true : undefined;
}

function logged(proc: PgcdcProcess, msg: string, fields: Record<string, unknown> = {}): true | undefined {
  const found = logRecords(proc.stderr()).some(
    (r) => r.msg === msg && Object.entries(fields).every(([k, v]) => r[k] === v),
  );
  return found ? true : undefined;
}

/** The stored offset has reached the server's current WAL position: everything is delivered. */
async function confirmedToEnd(db: TestDatabase, dir: string): Promise<true | undefined> {
  const text = await readFile(path.join(dir, 'offsets.json'), 'utf8').catch(() => undefined);
  if (!text) return undefined;
  const stored = (JSON.parse(text) as { lsn: string }).lsn;
  const { rows } = await db.sql.query<{ ok: boolean }>(`select $1::pg_lsn >= pg_current_wal_lsn() as ok`, [stored]);
  return rows[0]?.ok ? true : undefined;
}

function rowsOf(events: readonly DeliveredEvent[], topic: string): Map<string, Record<string, unknown>> {
  return replay(events).tables.get(topic) ?? new Map<string, Record<string, unknown>>();
}

async function spillFilesLeft(dir: string): Promise<string[]> {
  return (await readdir(spillDir(dir))).filter((name) => name.endsWith('.pgoutput'));
}

for (const major of MAJORS) {
  test(
    `PostgreSQL ${major}: an aborted streamed transaction emits nothing; a rolled-back subtransaction's ` +
      `rows are dropped; DDL and interleaved transactions stay right`,
    async () => {
      const db = await databaseOn(await streamingCluster(major));
      const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-streaming-'));
      await db.sql.query(
        `create table t (id int primary key, v text not null); create table side (id int primary key)`,
      );
      const proc = startPgcdc(args(db, dir, 'public.t,public.side'));
      await eventually(() => slotActive(db), 'active slot');
      const big = await connect(db.url);

      // 1. Streamed, then rolled back: nothing reaches the sink.
      await big.query('begin');
      const aborted = await currentXid(big);
      await big.query(`insert into t select g, repeat('a', 50) from generate_series(1000001, 1020000) g`);
      await eventually(() => spilled(dir, aborted, 200_000), 'the doomed transaction to stream in');
      await big.query('rollback');
      await eventually(
        () => logged(proc, 'streamed transaction rolled back: its spilled changes are dropped', { xid: aborted }),
        'the Stream Abort',
      );

      // 2. Streamed with a subtransaction rolled back after it streamed, a DDL, and small transactions
      // committing (and delivered) while it is open.
      await big.query('begin');
      const xid = await currentXid(big);
      await big.query(`insert into t select g, 'top' from generate_series(1, 5000) g`);
      await big.query('savepoint s1');
      await big.query(`insert into t select g, repeat('s', 100) from generate_series(100001, 120000) g`);
      await eventually(() => spilled(dir, xid, 1_500_000), 'the subtransaction to stream in');
      await big.query('rollback to savepoint s1');
      await eventually(
        () =>
          logged(proc, 'subtransaction of a streamed transaction rolled back: its changes are dropped', {
            xid,
            dropped: true,
          }),
        'the subtransaction Stream Abort',
      );
      await db.sql.query(`insert into side values (1)`);
      await eventually(
        async () =>
          (await readJsonl(path.join(dir, 'events'))).some((e) => e.topic === `${db.name}.public.side`)
            ? true
            : undefined,
        'the interleaved transaction delivered while the streamed one is open',
      );
      await big.query('savepoint s2');
      await big.query(`insert into t select g, 'kept' from generate_series(5001, 6000) g`);
      await big.query('release savepoint s2');
      await big.query(`alter table t add column note text default 'none'`);
      await big.query(`insert into t select g, 'late', 'n' || g from generate_series(6001, 9000) g`);
      await big.query(`update t set v = 'updated' where id <= 100`);
      await big.query(`delete from t where id between 101 and 200`);
      await big.query('commit');
      await db.sql.query(`insert into t values (9001, 'after', 'x'); insert into side values (2)`);
      await eventually(() => confirmedToEnd(db, dir), 'everything confirmed');
      proc.kill('SIGTERM');
      assert.equal(await proc.exited, 0, proc.stderr());

      assert.ok(logged(proc, SPILLING, { xid: aborted }), 'the aborted transaction was streamed');
      assert.ok(logged(proc, SPILLING, { xid }), 'the committed transaction was streamed');
      const events = await readJsonl(path.join(dir, 'events'));
      assert.equal(new Set(events.map((e) => e.id)).size, events.length, 'no duplicated events');
      const ids = events.filter((e) => e.topic === `${db.name}.public.t`).map((e) => Number((e.key ?? {}).id));
      assert.equal(ids.filter((id) => id > 1_000_000).length, 0, 'nothing of the aborted transaction');
      assert.equal(
        ids.filter((id) => id > 100_000 && id <= 120_000).length,
        0,
        'nothing of the rolled-back subtransaction',
      );

      // The streamed transaction reads as one ordinary transaction: one commit LSN, ordinals 1..n.
      const streamed = events.filter((e) => e.value.source.txId === xid);
      assert.equal(streamed.length, 5000 + 1000 + 3000 + 100 + 100);
      assert.equal(new Set(streamed.map((e) => e.value.source.commit_lsn)).size, 1);
      assert.deepEqual(
        streamed.map((e) => e.value.transaction.total_order).sort((a, b) => a - b),
        streamed.map((_, i) => i + 1),
      );
      assert.ok(
        streamed.every((e) => e.id === `${e.value.source.commit_lsn}:${e.value.transaction.total_order - 1}`),
        'ids are <commit_lsn>:<ordinal from 0>',
      );

      // Columns added inside the streamed transaction show in its later events and in the next ones.
      const byId = new Map(
        events.filter((e) => e.value.after).map((e) => [Number((e.key ?? {}).id), e.value.after ?? {}]),
      );
      assert.equal(byId.get(6001)?.note, 'n6001');
      assert.equal(byId.get(9001)?.note, 'x');
      const { rows } = await db.sql.query<{ id: number; v: string }>(`select id, v from t`);
      const source = new Map(rows.map((r) => [JSON.stringify({ id: r.id }), { id: r.id, v: r.v }]));
      const replayed = new Map(
        [...rowsOf(events, `${db.name}.public.t`)].map(([k, row]) => [k, { id: row.id, v: row.v }]),
      );
      assert.deepEqual(compareRows(replayed, source), { lost: 0, extra: 0, mismatched: 0 });
      assert.equal(rowsOf(events, `${db.name}.public.side`).size, 2);
      assert.deepEqual(await spillFilesLeft(dir), [], 'no spill file left');
    },
  );

  test(
    `PostgreSQL ${major}: SIGKILL in the middle of a streamed transaction and during its replay, restart: ` +
      `nothing lost, nothing duplicated`,
    async () => {
      const db = await databaseOn(await streamingCluster(major));
      const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-streaming-kill-'));
      await db.sql.query(`create table acct (id int primary key, balance int not null)`);
      const run = (): PgcdcProcess => startPgcdc(args(db, dir, 'public.acct', ['--batch-size', '300']));
      let proc = run();
      await eventually(() => slotActive(db), 'active slot');
      await db.sql.query(`insert into acct select g, g from generate_series(1, 1000) g`);

      // Killed while a transaction is streaming in.
      const big = await connect(db.url);
      await big.query('begin');
      const xid = await currentXid(big);
      await big.query(`insert into acct select g, g from generate_series(100001, 140000) g`);
      await eventually(() => spilled(dir, xid, 300_000), 'the transaction to stream in');
      proc.kill('SIGKILL');
      await proc.exited;
      // A spill file whose transaction the server will never send again (rolled back while pgcdc was down).
      await writeFile(path.join(spillDir(dir), '4000000000.pgoutput'), 'stale');
      await big.query(`insert into acct select g, g from generate_series(140001, 160000) g`);
      await big.query(`update acct set balance = balance + 1 where id % 2 = 0`);
      await db.sql.query(`insert into acct select g, g from generate_series(2001, 2100) g`);
      await big.query('commit');
      proc = run();
      await eventually(() => confirmedToEnd(db, dir), 'the restarted run to deliver everything');
      assert.ok(
        logged(
          proc,
          'deleted spill files of streamed transactions left by an earlier run (the server sends them again)',
        ),
        proc.stderr(),
      );
      assert.ok(logged(proc, SPILLING, { xid }), 'the transaction was streamed again from its start');

      // Killed while a committed streamed transaction is being delivered from its spill file.
      await big.query('begin');
      const second = await currentXid(big);
      await big.query(`insert into acct select g, g from generate_series(200001, 400000) g`);
      await big.query(`delete from acct where id % 10 = 0`);
      await big.query('commit');
      await eventually(
        () => logged(proc, 'streamed transaction committed: delivering it from its spill file', { xid: second }),
        'the replay to start',
      );
      proc.kill('SIGKILL');
      await proc.exited;
      proc = run();
      await eventually(() => confirmedToEnd(db, dir), 'the restarted run to deliver everything', 180_000);
      proc.kill('SIGTERM');
      assert.equal(await proc.exited, 0, proc.stderr());

      const events = await readJsonl(path.join(dir, 'events'));
      assert.equal(new Set(events.map((e) => e.id)).size, events.length, 'no duplicated events in the files');
      const { rows } = await db.sql.query<{ id: number; balance: number }>(`select id, balance from acct`);
      const source = new Map(rows.map((r) => [JSON.stringify({ id: r.id }), { id: r.id, balance: r.balance }]));
      assert.deepEqual(compareRows(rowsOf(events, `${db.name}.public.acct`), source), {
        lost: 0,
        extra: 0,
        mismatched: 0,
      });
      assert.deepEqual(await spillFilesLeft(dir), [], 'no spill file left');
    },
  );
}

test('PostgreSQL 13: --streaming is refused with one clear line and exit 2, before anything is created', async () => {
  const db = await databaseOn(await startCluster({ major: 13 }));
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-streaming-13-'));
  await db.sql.query(`create table t (id int primary key)`);
  const { code, stderr } = await runPgcdc(args(db, dir, 'public.t'));
  assert.equal(code, 2, stderr);
  const lines = stderr
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('pgcdc:'));
  assert.equal(lines.length, 1, stderr);
  assert.match(lines[0] ?? '', /streaming needs PostgreSQL 14 or newer.*runs PostgreSQL 13/);
  const { rowCount } = await db.sql.query(`select 1 from pg_replication_slots`);
  assert.equal(rowCount, 0, 'no slot created');
});
