/**
 * Major upgrades of a real cluster under pgcdc: an old cluster with wal_level logical, pgcdc and a
 * workload on it, then `pg_upgrade` into a new major's data directory, the new cluster started,
 * pgcdc run again on the same offsets file.
 *
 * pg_upgrade needs complete installations (pg_controldata, pg_resetwal, pg_dump, psql ...), which
 * the embedded npm packages lack; scripts/fetch-upgrade-binaries.sh puts them under
 * PGCDC_UPGRADE_BINARIES/<major>/bin (CI sets it). Without them the tests skip loudly.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { EmbeddedCluster } from '../../src/embedded/cluster.ts';
import { awaitStreaming, captureArgs, runPgcdc, startPgcdc, type PgcdcProcess } from './cli.ts';
import { caughtUp, Workload } from './faults.ts';
import { eventually, requireOrSkip, startCluster, type TestDatabase } from './pg.ts';
import { connect, databaseOn } from './streaming.ts';

export { awaitStreaming } from './cli.ts';

/** The bin directory of `major`'s complete installation, or undefined when it is not there. */
export function upgradeBinDir(major: number): string | undefined {
  const root = process.env.PGCDC_UPGRADE_BINARIES;
  if (!root) return undefined;
  const bin = path.join(root, String(major), 'bin');
  return existsSync(path.join(bin, 'pg_upgrade')) ? bin : undefined;
}

function binOf(major: number): string {
  const bin = upgradeBinDir(major);
  if (!bin) throw new Error(`no PostgreSQL ${major} installation under PGCDC_UPGRADE_BINARIES`);
  return bin;
}

/** Skips (loudly; a failure under PGCDC_REQUIRE_ALL=1) unless every major's installation is there. */
export function requireUpgradeBinaries(majors: readonly number[]): string | false {
  const missing = majors.filter((m) => upgradeBinDir(m) === undefined);
  return requireOrSkip(
    missing.length === 0,
    `complete PostgreSQL ${missing.join(', ')} installations (pg_upgrade; set PGCDC_UPGRADE_BINARIES and run ` +
      `scripts/fetch-upgrade-binaries.sh)`,
  );
}

/** A running cluster of `major` from its complete installation (stopped and removed after the file). */
export function upgradeCluster(major: number, initdbArgs: readonly string[] = []): Promise<EmbeddedCluster> {
  return startCluster({ major, binDir: binOf(major), settings: { wal_sender_timeout: '10s' }, initdbArgs });
}

/**
 * A fresh, stopped cluster of `major` for pg_upgrade to fill (pg_upgrade wants an initdb'd, empty
 * one). initdb 18 turns data checksums on by default and pg_upgrade wants both clusters alike: the
 * old ones here have none.
 */
export async function targetCluster(major: number): Promise<EmbeddedCluster> {
  const cluster = await upgradeCluster(major, major >= 18 ? ['--no-data-checksums'] : []);
  await cluster.stop();
  return cluster;
}

export interface PgUpgradeRun {
  readonly ok: boolean;
  /** What pg_upgrade printed (its refusal, on failure). */
  readonly output: string;
}

/**
 * Runs the new major's pg_upgrade from `old` into `target` (both stopped), copying the files.
 * `check`: only `--check`, which changes nothing. Resolves either way; `ok` says how it ended.
 */
export async function pgUpgrade(old: EmbeddedCluster, target: EmbeddedCluster, check = false): Promise<PgUpgradeRun> {
  const args = [
    '-b',
    binOf(old.major),
    '-B',
    binOf(target.major),
    '-d',
    old.dataDir,
    '-D',
    target.dataDir,
    '-U',
    'postgres',
    '-p',
    String(old.port),
    '-P',
    String(target.port),
    '-s',
    target.base,
    ...(check ? ['--check'] : []),
  ];
  try {
    const output = await target.runTool(path.join(binOf(target.major), 'pg_upgrade'), args, {
      PGPASSWORD: old.password,
    });
    return { ok: true, output };
  } catch (error) {
    return { ok: false, output: error instanceof Error ? error.message : String(error) };
  }
}

/**
 * Upgrades stopped-or-running `old` into `target` (a `targetCluster`) with pg_upgrade, asserting it
 * succeeded; starts `target` and returns a client of database `database` on it.
 */
export async function upgradeInto(old: EmbeddedCluster, target: EmbeddedCluster, database: string): Promise<pg.Client> {
  await old.stop();
  const upgraded = await pgUpgrade(old, target);
  assert.ok(upgraded.ok, upgraded.output);
  await target.restart();
  return connect(target.url(database));
}

/** The cluster's system identifier (what IDENTIFY_SYSTEM and the offsets file hold). */
export async function systemIdentifier(sql: pg.Client): Promise<string> {
  const { rows } = await sql.query<{ id: string }>(`select system_identifier::text as id from pg_control_system()`);
  const id = rows[0]?.id;
  if (!id) throw new Error('no system identifier');
  return id;
}

/** The capture of `acct` into `dir` (JSONL, offsets.json) with `extra` flags. */
export function startCapture(db: TestDatabase, dir: string, extra: readonly string[] = []): PgcdcProcess {
  return startPgcdc(captureArgs(db, dir, 'public.acct', extra));
}

/** Runs the workload on `url` until `transactions` committed, stops it; returns how many committed. */
export async function workloadRuns(url: string, transactions: number): Promise<number> {
  const work = new Workload(url, 5);
  await eventually(() => (work.committed >= transactions ? true : undefined), `${transactions} transactions`);
  await work.stop();
  return work.committed;
}

/** An old cluster of `major` whose fresh database holds `acct` (50 rows), captured by `capture` into `dir`. */
export interface StreamingSource {
  readonly cluster: EmbeddedCluster;
  readonly db: TestDatabase;
  readonly dir: string;
  readonly capture: PgcdcProcess;
}

/**
 * The prologue of every upgrade test: a cluster of `major` from its complete installation, `acct`
 * (id, balance; 50 rows) in a fresh database, and the capture of it into a new directory named
 * `dirPrefix...`, streaming.
 */
export async function streamingSource(major: number, dirPrefix: string): Promise<StreamingSource> {
  const cluster = await upgradeCluster(major);
  const db = await databaseOn(cluster);
  await db.sql.query(`create table acct (id int primary key, balance int not null)`);
  await db.sql.query(`insert into acct select g, g from generate_series(1, 50) g`);
  const dir = await mkdtemp(path.join(tmpdir(), dirPrefix));
  const capture = startCapture(db, dir);
  await awaitStreaming(capture, `pgcdc streaming on ${major}`);
  return { cluster, db, dir, capture };
}

/** Waits until the checkpoint in `dir` covers everything `sql` wrote, then stops `capture` (SIGTERM, exit 0). */
export async function stopCaughtUp(sql: pg.Client, dir: string, capture: PgcdcProcess, what: string): Promise<void> {
  await eventually(() => caughtUp(sql, path.join(dir, 'offsets.json')), what);
  capture.kill('SIGTERM');
  assert.equal(await capture.exited, 0, capture.stderr());
}

/**
 * `streamingSource`, then `transactions` of the workload delivered: the capture caught up and
 * stopped. Returns the source and how many transactions committed.
 */
export async function capturedSource(
  major: number,
  dirPrefix: string,
  transactions: number,
): Promise<Omit<StreamingSource, 'capture'> & { committed: number }> {
  const { capture, ...source } = await streamingSource(major, dirPrefix);
  const committed = await workloadRuns(source.db.url, transactions);
  await stopCaughtUp(source.db.sql, source.dir, capture, `caught up on ${major}`);
  return { ...source, committed };
}

/** Whether `pgcdc <command> --help` works and names `flag` (a part another change adds). */
export async function pgcdcHas(command: string, flag: string): Promise<boolean> {
  const help = await runPgcdc([command, '--help']);
  return help.code === 0 && help.stdout.includes(flag);
}

/**
 * Drains the slot of `db` so pg_upgrade (17+) carries it over: `pgcdc drain` when it exists
 * (exit 0 once the slot confirmed the current WAL position), else the capture runs until the slot
 * confirmed everything written so far and is stopped (SIGTERM: a clean stop). Returns how.
 */
export async function drain(db: TestDatabase, dir: string, proc: PgcdcProcess | undefined): Promise<string> {
  if (await pgcdcHas('drain', '--slot')) {
    if (proc) {
      proc.kill('SIGTERM');
      await proc.exited;
    }
    const drained = await runPgcdc(captureArgs(db, dir, 'public.acct', [], 'drain'));
    if (drained.code !== 0) throw new Error(`pgcdc drain exited ${drained.code}: ${drained.stderr}`);
    return 'pgcdc drain';
  }
  const capture = proc ?? startCapture(db, dir);
  const { rows } = await db.sql.query<{ lsn: string }>(`select pg_current_wal_lsn()::text as lsn`);
  const target = rows[0]?.lsn ?? '0/0';
  await eventually(async () => {
    const slot = await db.sql.query<{ ok: boolean }>(
      `select confirmed_flush_lsn >= $1::pg_lsn as ok from pg_replication_slots where slot_name = $2`,
      [target, `s_${db.name}`],
    );
    return slot.rows[0]?.ok ? true : undefined;
  }, `slot confirmed ${target}`);
  capture.kill('SIGTERM');
  const code = await capture.exited;
  if (code !== 0) throw new Error(`pgcdc exited ${code} on SIGTERM: ${capture.stderr()}`);
  return 'run until confirmed_flush_lsn reached the current WAL position, then stopped';
}

/** The checkpoint's system identifier and LSN, as stored. */
export async function storedIdentity(dir: string): Promise<{ systemId: string; lsn: string }> {
  return JSON.parse(await readFile(path.join(dir, 'offsets.json'), 'utf8')) as { systemId: string; lsn: string };
}

/** The `pgcdc: error: ...` lines of a refused run's stderr. */
export function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((line) => line.startsWith('pgcdc: error:'));
}
