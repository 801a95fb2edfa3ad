/**
 * A read-only incremental snapshot from a PostgreSQL 16 hot standby (built from a primary by
 * test/harness/standby.ts): pgcdc streams from a slot on the standby and backfills a table there
 * while the primary keeps writing to the same keys. Nothing is written to either server by pgcdc;
 * replaying the delivered events equals the table.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { eventually, startCluster, type TestDatabase, type TestServer } from '../harness/pg.ts';
import { runPgcdc, startPgcdc } from '../harness/cli.ts';
import { startStandby } from '../harness/standby.ts';
import { assertExact, incrementalDone, outDir, storedProgress, verifyTable, workload } from '../harness/snapshots.ts';

test('read-only incremental snapshot from a PostgreSQL 16 standby while the primary writes the same keys', async () => {
  const primary = await startCluster({ major: 16 });
  const admin = new pg.Client({ connectionString: primary.url('postgres') });
  await admin.connect();
  await admin.query('create database shop');
  await admin.end();
  const sql = new pg.Client({ connectionString: primary.url('shop') });
  await sql.connect();
  try {
    await sql.query(`create table items (id int primary key, n int not null, label text);
      insert into items select g, g % 97, 'row ' || g from generate_series(1, 20000) g;
      create publication standby_pub for table items`);
    const standby = await startStandby(primary, { hotStandbyFeedback: true });
    await standby.caughtUp();
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-standby-snap-'));
    const offsets = path.join(dir, 'offsets.json');
    const proc = startPgcdc([
      'run',
      '--source',
      standby.cluster.url('shop'),
      '--slot',
      'standby_slot',
      '--publication',
      'standby_pub',
      '--tables',
      'public.items',
      '--no-create-publication',
      '--snapshot-mode',
      'never',
      '--snapshot-method',
      'read-only',
      '--snapshot-chunk-size',
      '1500',
      '--out',
      outDir(dir),
      '--offsets',
      offsets,
      '--log-format',
      'json',
      '--snapshot-progress',
      'off',
    ]);
    // A logical slot on a standby waits for the primary to log the running transactions.
    await eventually(async () => {
      await sql.query('select pg_log_standby_snapshot()');
      return (await storedProgress(offsets)) ? true : undefined;
    }, 'the slot on the standby and the first checkpoint');
    const db: TestDatabase = { name: 'shop', url: primary.url('shop'), server: {} as TestServer, sql };
    const load = workload(db, 'items', 21_000);
    const asked = await runPgcdc(['snapshot', 'public.items', '--offsets', offsets]);
    assert.equal(asked.code, 0, asked.stderr);
    await eventually(
      async () => (incrementalDone(await storedProgress(offsets)) ? true : undefined),
      'the backfill on the standby',
      240_000,
    );
    await load.stop();
    // Everything the primary wrote has reached the standby and pgcdc's checkpoint.
    const { rows } = await sql.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn');
    const target = rows[0]?.lsn ?? '0/0';
    await standby.caughtUp();
    await eventually(async () => {
      await sql.query('select pg_log_standby_snapshot()');
      const state = await storedProgress(offsets);
      if (!state) return undefined;
      const ok = await sql.query<{ ok: boolean }>('select $1::pg_lsn >= $2::pg_lsn as ok', [state.lsn, target]);
      return ok.rows[0]?.ok ? true : undefined;
    }, 'pgcdc to confirm past the last write');
    proc.kill('SIGTERM');
    assert.equal(await proc.exited, 0, proc.stderr());
    const verdict = await verifyTable(db, outDir(dir), 'items');
    assertExact(verdict, 'replay of the standby backfill plus the stream equals the primary table');
    assert.ok(verdict.reads > 10_000, `rows came from the standby backfill (${verdict.reads})`);
  } finally {
    await sql.end().catch(() => undefined);
  }
});
