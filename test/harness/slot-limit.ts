/**
 * A database on a cluster of its own whose slots may keep only 64 MB of WAL (PostgreSQL 13+), for
 * the tests that bring a slot close to invalidation: `acct` to capture, and `filler`, whose rows
 * are stored out of line and uncompressed so each one writes about its size in WAL.
 */
import type pg from 'pg';
import { freshDatabase, startCluster, type TestDatabase } from './pg.ts';

export async function slotLimitDatabase(): Promise<TestDatabase> {
  const cluster = await startCluster({
    // No timed checkpoint: the test decides when WAL is removed (and a slot lost).
    settings: { wal_sender_timeout: '10s', max_slot_wal_keep_size: '64MB', checkpoint_timeout: '1h' },
  });
  const db = await freshDatabase({ major: cluster.major, url: (d) => cluster.url(d), cluster });
  await db.sql.query('create table acct (id int primary key, balance int)');
  await db.sql.query('create table filler (v text)');
  await db.sql.query('alter table filler alter column v set storage external');
  return db;
}

/** The slot's `safe_wal_size` (null: unlimited) and `wal_status` as the server reports them now. */
export async function safeWal(sql: pg.Client, slot: string): Promise<{ safe: number | null; status: string }> {
  const { rows } = await sql.query<{ safe: string | null; wal_status: string }>(
    `select safe_wal_size::text as safe, wal_status from pg_replication_slots where slot_name = $1`,
    [slot],
  );
  return { safe: rows[0]?.safe === null ? null : Number(rows[0]?.safe), status: rows[0]?.wal_status ?? 'missing' };
}
