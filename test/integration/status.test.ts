/**
 * `pgcdc status` against the server's own views: a capture under a workload, stopped so that lag
 * grows, restarted so that it shrinks; and a slot close to invalidation (small
 * max_slot_wal_keep_size, pgcdc stopped, WAL written) that makes status exit 2 before and after the
 * slot is lost. Values are compared with bounds read from pg_replication_slots around the call,
 * never with timings.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { eventually, freshDatabase, onTeardown, TEST_MAJOR, type TestDatabase } from '../harness/pg.ts';
import { captureArgs, runPgcdc, startPgcdc, type PgcdcProcess } from '../harness/cli.ts';
import { caughtUp, Workload } from '../harness/faults.ts';
import { safeWal, slotLimitDatabase } from '../harness/slot-limit.ts';

interface StatusJson {
  level: string;
  exitCode: number;
  sample: {
    exists: boolean;
    walStatus: string | null;
    confirmedFlushLsn: string | null;
    restartLsn: string | null;
    lagBytes: number | null;
    retainedWalBytes: number | null;
    safeWalSizeBytes: number | null;
  } | null;
  alerts: { name: string; level: string; message: string }[];
  process: { running: boolean; pid: number | null; uptimeSeconds: number | null; foundBy: string | null };
  checkpoint: { present: boolean; lsn: string | null };
  run: { present: boolean; error: string | null; current: boolean };
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-status-'));
  onTeardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function runArgs(db: TestDatabase, dir: string, table: string): string[] {
  return captureArgs(db, dir, table, ['--config', path.join(dir, 'pgcdc.yaml')]);
}

async function status(
  db: TestDatabase,
  dir: string,
  extra: string[] = [],
): Promise<{ code: number; json: StatusJson; stderr: string }> {
  const result = await runPgcdc([
    'status',
    '--config',
    path.join(dir, 'pgcdc.yaml'),
    '--source',
    db.url,
    '--slot',
    `s_${db.name}`,
    '--offsets',
    path.join(dir, 'offsets.json'),
    '--json',
    ...extra,
  ]);
  assert.ok(result.stdout.startsWith('{'), `status printed JSON: ${result.stdout}${result.stderr}`);
  return { code: result.code, json: JSON.parse(result.stdout) as StatusJson, stderr: result.stderr };
}

/** The slot's lag and positions as the server's views give them now. */
async function viewLag(sql: pg.Client, slot: string): Promise<{ lag: number; confirmed: string; restart: string }> {
  const { rows } = await sql.query<{ lag: string; confirmed: string; restart: string }>(
    `select pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::text as lag, ` +
      `confirmed_flush_lsn::text as confirmed, restart_lsn::text as restart ` +
      `from pg_replication_slots where slot_name = $1`,
    [slot],
  );
  const row = rows[0];
  assert.ok(row, `slot ${slot} exists`);
  return { lag: Number(row.lag), confirmed: row.confirmed, restart: row.restart };
}

async function streaming(proc: PgcdcProcess): Promise<void> {
  await eventually(() => (proc.stderr().includes('"msg":"streaming"') ? true : undefined), 'streaming');
}

test('status matches pg_replication_slots: lag grows while pgcdc is stopped, shrinks once it runs', async () => {
  const db = await freshDatabase();
  const slot = `s_${db.name}`;
  await db.sql.query('create table acct (id int primary key, balance int)');
  const dir = await tempDir();
  await writeFile(path.join(dir, 'pgcdc.yaml'), 'alerts:\n  intervalMs: 200\n');
  const workload = new Workload(db.url);
  onTeardown(() => workload.stop());

  let proc = startPgcdc(runArgs(db, dir, 'public.acct'));
  await streaming(proc);
  await eventually(() => (workload.committed > 20 ? true : undefined), 'the workload committed');
  const running = await status(db, dir);
  assert.equal(running.json.process.running, true, running.stderr);
  assert.equal(running.json.process.pid, proc.child.pid);
  assert.equal(running.json.process.foundBy, 'lock');
  assert.equal(running.json.run.current, true);
  assert.equal(running.json.sample?.exists, true);

  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
  const committedAtStop = workload.committed;
  await eventually(() => (workload.committed > committedAtStop + 20 ? true : undefined), 'more WAL while stopped');

  const before = await viewLag(db.sql, slot);
  const stopped = await status(db, dir);
  const after = await viewLag(db.sql, slot);
  const lagStopped = stopped.json.sample?.lagBytes ?? -1;
  // The confirmed position does not move while pgcdc is stopped; the WAL end only grows.
  assert.equal(stopped.json.sample?.confirmedFlushLsn, before.confirmed);
  assert.equal(stopped.json.sample?.restartLsn, before.restart);
  assert.ok(lagStopped >= before.lag && lagStopped <= after.lag, `${before.lag} <= ${lagStopped} <= ${after.lag}`);
  assert.ok(lagStopped > 0);
  assert.equal(stopped.json.process.running, false);
  assert.equal(stopped.json.process.pid, null);
  assert.equal(stopped.json.checkpoint.present, true);
  assert.equal(stopped.json.checkpoint.lsn, before.confirmed);
  assert.equal(stopped.code, 0, JSON.stringify(stopped.json.alerts));

  const committedThen = workload.committed;
  await eventually(() => (workload.committed > committedThen + 20 ? true : undefined), 'still more WAL');
  const grown = await status(db, dir);
  assert.ok((grown.json.sample?.lagBytes ?? 0) > lagStopped, 'lag grew while pgcdc was stopped');

  proc = startPgcdc(runArgs(db, dir, 'public.acct'));
  await streaming(proc);
  await workload.stop();
  const offsets = path.join(dir, 'offsets.json');
  await eventually(() => caughtUp(db.sql, offsets), 'caught up after the restart');
  const again = await status(db, dir);
  assert.ok(
    (again.json.sample?.lagBytes ?? Infinity) < (grown.json.sample?.lagBytes ?? 0),
    `lag shrank: ${again.json.sample?.lagBytes} < ${grown.json.sample?.lagBytes}`,
  );
  assert.equal(again.code, 0, JSON.stringify(again.json.alerts));
  assert.equal(again.json.process.running, true);
  assert.equal(again.json.process.pid, proc.child.pid);
  assert.ok((again.json.process.uptimeSeconds ?? -1) >= 0);
  process.stderr.write(
    `status: lag while stopped ${lagStopped} B (views: ${before.lag}..${after.lag}), ` +
      `grown ${grown.json.sample?.lagBytes} B, after catching up ${again.json.sample?.lagBytes} B\n`,
  );
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
});

test('status exits 3 with one line for bad flags and for a server it cannot reach', async () => {
  const dir = await tempDir();
  const bad = await runPgcdc(['status', '--no-such-flag']);
  assert.equal(bad.code, 3, bad.stderr);
  const badConfig = path.join(dir, 'bad.yaml');
  await writeFile(badConfig, 'alerts:\n  lagBytes:\n    warning: 12XB\n');
  const config = await runPgcdc(['status', '--config', badConfig]);
  assert.equal(config.code, 3);
  assert.match(config.stderr, /alerts\.lagBytes\.warning/);
  assert.equal(config.stderr.trim().split('\n').length, 1, config.stderr);
  const unreachable = await runPgcdc([
    'status',
    '--source',
    'postgres://u:secretpw@127.0.0.1:1/db?sslmode=disable',
    '--offsets',
    path.join(dir, 'none.json'),
  ]);
  assert.equal(unreachable.code, 3, unreachable.stdout + unreachable.stderr);
  assert.match(unreachable.stdout, /UNKNOWN/);
  assert.doesNotMatch(unreachable.stdout + unreachable.stderr, /secretpw/);
});

/** Writes about `mb` MiB of WAL into `filler` (a table no capture reads). */
async function writeWal(sql: pg.Client, mb: number): Promise<void> {
  await sql.query(`insert into filler select repeat(md5(g::text), 32768) from generate_series(1, $1) g`, [mb]);
}

test('a slot close to invalidation makes status exit 2 naming safe_wal_size; a lost slot too', async (t) => {
  if (TEST_MAJOR < 13) {
    t.skip('max_slot_wal_keep_size needs PostgreSQL 13+');
    return;
  }
  const db = await slotLimitDatabase();
  const slot = `s_${db.name}`;
  const dir = await tempDir();
  await writeFile(path.join(dir, 'pgcdc.yaml'), 'alerts:\n  intervalMs: 200\n');
  const proc = startPgcdc(runArgs(db, dir, 'public.acct'));
  await streaming(proc);
  await db.sql.query('insert into acct values (1, 1)');
  await eventually(() => caughtUp(db.sql, path.join(dir, 'offsets.json')), 'caught up');
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
  const healthy = await status(db, dir);
  assert.equal(healthy.code, 0, JSON.stringify(healthy.json.alerts));

  // Below 20% of 64 MiB (the default critical threshold), still above 0: not lost.
  for (
    let state = await safeWal(db.sql, slot);
    (state.safe ?? 0) > 12 * 1024 * 1024;
    state = await safeWal(db.sql, slot)
  )
    await writeWal(db.sql, 2);
  const close = await safeWal(db.sql, slot);
  assert.notEqual(close.status, 'lost');
  assert.ok((close.safe ?? 0) > 0, `safe_wal_size ${close.safe} is still positive`);
  const critical = await status(db, dir);
  assert.equal(critical.code, 2, JSON.stringify(critical.json));
  const alert = critical.json.alerts.find((a) => a.name === 'safe_wal_size_bytes');
  assert.equal(alert?.level, 'critical');
  assert.match(alert?.message ?? '', /safe_wal_size.*start or unblock pgcdc now.*max_slot_wal_keep_size/);
  const text = await runPgcdc([
    'status',
    '--source',
    db.url,
    '--slot',
    slot,
    '--offsets',
    path.join(dir, 'offsets.json'),
  ]);
  assert.equal(text.code, 2);
  assert.match(text.stdout, /^pgcdc status: CRITICAL \(exit 2\)$/m);
  assert.match(
    text.stdout,
    /CRITICAL safe_wal_size_bytes: safe_wal_size: only .* MiB of max_slot_wal_keep_size 64 MiB/,
  );
  process.stderr.write(`status: close to invalidation: safe_wal_size ${close.safe} B\n${text.stdout}`);

  // Past the limit, a checkpoint invalidates the slot.
  await eventually(async () => {
    await writeWal(db.sql, 8);
    await db.sql.query('checkpoint');
    return (await safeWal(db.sql, slot)).status === 'lost' ? true : undefined;
  }, 'the slot lost');
  const lost = await status(db, dir);
  assert.equal(lost.code, 2);
  const slotAlert = lost.json.alerts.find((a) => a.name === 'slot');
  assert.equal(slotAlert?.level, 'critical');
  assert.match(slotAlert?.message ?? '', /is lost \(wal_status lost\)/);
});
