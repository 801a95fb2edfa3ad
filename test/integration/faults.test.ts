/**
 * Faults on the source side: the walsender terminated, PostgreSQL crashing (immediate stop). pgcdc
 * stays up: it logs one retry line naming the fault, starts the capture again in the process
 * (lifecycle/supervisor.ts) and resumes with nothing lost and nothing duplicated in the files.
 * test/integration/recovery.test.ts repeats these faults 20 times under a workload.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freshDatabase, eventually, startCluster, testServer, type TestDatabase } from '../harness/pg.ts';
import { storedProgress } from '../harness/snapshots.ts';
import { compareRows, readJsonl, replay, startPgcdc, type PgcdcProcess } from '../harness/cli.ts';
import { logRecords } from '../harness/process.ts';

function args(db: TestDatabase, dir: string): string[] {
  return [
    'run',
    '--source',
    db.url,
    '--slot',
    `s_${db.name}`,
    '--publication',
    'fault_pub',
    '--tables',
    'public.acct',
    '--out',
    path.join(dir, 'events'),
    '--offsets',
    path.join(dir, 'offsets.json'),
    '--log-format',
    'json',
    '--batch-size',
    '300',
    '--retry-initial-delay',
    '100',
    '--retry-max-delay',
    '1000',
  ];
}

/** pgcdc's retry lines (warn, with the retry count), once there are `count` of them. */
async function retryLines(proc: PgcdcProcess, count: number): Promise<{ code: string; msg: string }[]> {
  return eventually(() => {
    const lines = logRecords(proc.stderr()).filter((r) => r.level === 40 && typeof r.retry === 'number');
    return lines.length >= count ? lines.map((r) => ({ code: String(r.code), msg: r.msg })) : undefined;
  }, `${count} retry line(s)`);
}

async function lsnReached(db: TestDatabase, dir: string): Promise<true | undefined> {
  const { rows } = await db.sql.query<{ lsn: string }>(`select pg_current_wal_lsn()::text as lsn`);
  const text = await readFile(path.join(dir, 'offsets.json'), 'utf8').catch(() => undefined);
  if (!text) return undefined;
  const stored = (JSON.parse(text) as { lsn: string }).lsn;
  const { rows: cmp } = await db.sql.query<{ ok: boolean }>(`select $1::pg_lsn >= $2::pg_lsn as ok`, [
    stored,
    rows[0]?.lsn,
  ]);
  return cmp[0]?.ok ? true : undefined;
}

async function verify(db: TestDatabase, dir: string): Promise<void> {
  const events = await readJsonl(path.join(dir, 'events'));
  assert.equal(new Set(events.map((e) => e.id)).size, events.length, 'no duplicated events in the files');
  const { rows } = await db.sql.query<{ id: number; balance: number }>(`select id, balance from acct`);
  const source = new Map(rows.map((r) => [JSON.stringify({ id: r.id }), { id: r.id, balance: r.balance }]));
  assert.deepEqual(compareRows(replay(events).tables.get(`${db.name}.public.acct`), source), {
    lost: 0,
    extra: 0,
    mismatched: 0,
  });
}

test('the walsender is terminated mid-stream: one retry line, the same process resumes exactly', async () => {
  const db = await freshDatabase();
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-fault-'));
  await db.sql.query(`create table acct (id int primary key, balance int not null)`);
  const proc = startPgcdc(args(db, dir));
  // Streaming, not the slot's brief activity while it is created: the snapshot is done first.
  await eventually(async () => {
    if ((await storedProgress(path.join(dir, 'offsets.json')))?.snapshot?.state !== 'done') return undefined;
    return (await db.sql.query(`select 1 from pg_replication_slots where slot_name = $1 and active`, [`s_${db.name}`]))
      .rowCount === 1
      ? true
      : undefined;
  }, 'streaming from an active slot');
  for (let i = 0; i < 20; i++)
    await db.sql.query(`insert into acct select g, g from generate_series(${i * 100 + 1}, ${i * 100 + 100}) g`);
  await db.sql.query(`select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = $1`, [
    `s_${db.name}`,
  ]);
  const [line] = await retryLines(proc, 1);
  assert.equal(line?.code, 'CONNECTION_LOST');
  assert.match(line?.msg ?? '', /replication connection was lost: terminating connection due to administrator command/);
  await db.sql.query(`update acct set balance = balance + 1 where id % 3 = 0; delete from acct where id % 10 = 0`);
  await eventually(() => lsnReached(db, dir), 'resume to the end');
  assert.equal(proc.child.exitCode, null, 'the same process');
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
  await verify(db, dir);
});

test('PostgreSQL crashes (immediate stop) while changes stream: the same process resumes exactly', async () => {
  await testServer();
  const cluster = await startCluster();
  const admin = new pg.Client({ connectionString: cluster.url('postgres') });
  await admin.connect();
  await admin.query(`create database crashdb`);
  await admin.end();
  const sql = new pg.Client({ connectionString: cluster.url('crashdb') });
  sql.on('error', () => undefined);
  await sql.connect();
  const db: TestDatabase = {
    name: 'crashdb',
    url: cluster.url('crashdb'),
    server: { major: cluster.major, url: (d) => cluster.url(d), cluster },
    sql,
  };
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-crash-'));
  await sql.query(`create table acct (id int primary key, balance int not null)`);
  const proc = startPgcdc(args(db, dir));
  await eventually(
    async () =>
      (await sql.query(`select 1 from pg_replication_slots where active`)).rowCount === 1 ? true : undefined,
    'active slot',
  );
  for (let i = 0; i < 20; i++)
    await sql.query(`insert into acct select g, g from generate_series(${i * 100 + 1}, ${i * 100 + 100}) g`);
  await cluster.stop('immediate');
  const [line] = await retryLines(proc, 1);
  assert.equal(line?.code, 'CONNECTION_LOST');
  assert.match(line?.msg ?? '', /connection was lost|cannot connect/);
  await cluster.restart();
  const after = new pg.Client({ connectionString: cluster.url('crashdb') });
  await after.connect();
  const db2: TestDatabase = { ...db, sql: after };
  await after.query(`update acct set balance = balance * 2 where id % 7 = 0`);
  await eventually(() => lsnReached(db2, dir), 'resume to the end');
  assert.equal(proc.child.exitCode, null, 'the same process');
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
  await verify(db2, dir);
  await after.end();
  await sql.end().catch(() => undefined);
});
