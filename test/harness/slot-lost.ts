/**
 * The set-up of the lost-slot tests (lifecycle/lost-slot.ts, docs/recovery.md#lost-slots): a work
 * directory with a short heartbeat, the capture of `acct` run until its checkpoint holds an xid
 * horizon past the rows written so far and stopped cleanly, a recovery waited for to its end, and
 * the output replayed against the source.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import {
  awaitStreaming,
  captureArgs,
  compareRows,
  readJsonl,
  replay,
  startPgcdc,
  type Comparison,
  type DeliveredEvent,
  type PgcdcProcess,
} from './cli.ts';
import { readOffsets } from './offsets.ts';
import { eventually, onTeardown, type TestDatabase } from './pg.ts';
import { caughtUp, incrementalDone, storedProgress } from './snapshots.ts';

/** Samples the horizon often, so a test need not wait 10 s for one (xid-horizon.ts). */
export const HORIZON_ENV = { PGCDC_TEST_HORIZON_INTERVAL_MS: '100' };

/** A work directory `<prefix>...` (removed after the test) with a pgcdc.yaml of a short heartbeat. */
export async function lostSlotWorkdir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  onTeardown(() => rm(dir, { recursive: true, force: true }));
  // A short heartbeat moves an idle checkpoint past the horizon samples' LSNs quickly.
  await writeFile(path.join(dir, 'pgcdc.yaml'), 'heartbeat:\n  interval: 200\n');
  return dir;
}

/** The capture of `public.acct` of `db` into `dir`, with the directory's pgcdc.yaml and `extra`. */
export function lostSlotArgs(db: { url: string; name: string }, dir: string, extra: readonly string[] = []): string[] {
  return captureArgs(db, dir, 'public.acct', ['-c', path.join(dir, 'pgcdc.yaml'), ...extra]);
}

/** The next xid now: every row written so far has an older xmin. */
async function nextXid(sql: pg.Client): Promise<bigint> {
  const { rows } = await sql.query<{ x: string }>(`select txid_snapshot_xmax(txid_current_snapshot())::text as x`);
  return BigInt(rows[0]?.x ?? '0');
}

/** Stops `proc` with SIGTERM and asserts a clean exit. */
export async function stopCleanly(proc: PgcdcProcess): Promise<void> {
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
}

/**
 * Streams (with `flags`) until everything is delivered and the checkpoint's xid horizon is past
 * every row written so far; stops cleanly. What the gap changes after this is newer than the horizon.
 */
export async function captureUntilHorizon(db: TestDatabase, dir: string, flags: readonly string[]): Promise<void> {
  const past = await nextXid(db.sql);
  const proc = startPgcdc(lostSlotArgs(db, dir, flags), HORIZON_ENV);
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
  await stopCleanly(proc);
}

/** `captureUntilHorizon`, then the slot dropped while pgcdc is down: the gap opens. */
export async function captureThenDropSlot(db: TestDatabase, dir: string, flags: readonly string[]): Promise<void> {
  await captureUntilHorizon(db, dir, flags);
  await db.sql.query('select pg_drop_replication_slot($1)', [`s_${db.name}`]);
}

/**
 * Starts a recovery (with `flags`) read in chunks of 20 rows and SIGKILLs it once it stored part of
 * its re-read. Returns the killed process and the first table's stored progress at the kill.
 */
export async function killMidRecovery(
  db: TestDatabase,
  dir: string,
  flags: readonly string[],
): Promise<{ killed: PgcdcProcess; midway: { readonly emitted: number } }> {
  const offsets = path.join(dir, 'offsets.json');
  const killed = startPgcdc(lostSlotArgs(db, dir, [...flags, '--snapshot-chunk-size', '20']), HORIZON_ENV);
  const midway = await eventually(
    async () => {
      const t0 = (await storedProgress(offsets))?.incremental?.tables[0];
      return t0 !== undefined && t0.emitted > 0 && !t0.cursor.done ? t0 : undefined;
    },
    'the recovery stored part of its re-read',
    120_000,
  );
  killed.kill('SIGKILL');
  await killed.exited;
  return { killed, midway };
}

/** Waits until the stored recovery snapshot is done and `sql` is caught up in `dir`; stops `proc` cleanly. */
export async function waitRecovered(sql: pg.Client, dir: string, proc: PgcdcProcess): Promise<void> {
  const offsets = path.join(dir, 'offsets.json');
  await eventually(
    async () => (incrementalDone(await storedProgress(offsets)) && (await caughtUp(sql, offsets)) ? true : undefined),
    'the recovery done',
    180_000,
  );
  await stopCleanly(proc);
}

/** The output of `dir` replayed onto an empty map and compared with `acct (id, n)` on `sql`. */
export async function acctVerdict(
  sql: pg.Client,
  dir: string,
  topic: string,
): Promise<Comparison & { events: DeliveredEvent[]; duplicates: number }> {
  const events = await readJsonl(path.join(dir, 'events'));
  const replayed = replay(events);
  const { rows } = await sql.query<{ id: number; n: number }>('select id, n from acct');
  const source = new Map(rows.map((r) => [JSON.stringify({ id: r.id }), { id: r.id, n: r.n }]));
  return { events, duplicates: replayed.duplicates, ...compareRows(replayed.tables.get(topic), source) };
}
