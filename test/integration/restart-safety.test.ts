/**
 * Restart safety (issue 9, items 1 and 3): pgcdc never resumes from a position the server's WAL
 * does not back. An offsets file that was edited or damaged, or that is ahead of the server, a
 * server restored from an older copy of its data directory (before or after it wrote past the
 * stored offset again), and a slot that changed between pgcdc's check and START_REPLICATION are
 * all refused with one line and exit 1, with nothing acknowledged and nothing delivered past the gap.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { eventually, freshDatabase, onTeardown, startCluster, testServer, type TestDatabase } from '../harness/pg.ts';
import { compareRows, readJsonl, replay, startPgcdc, type PgcdcProcess } from '../harness/cli.ts';
import { caughtUp } from '../harness/snapshots.ts';
import { readOffsets, resealOffsets } from '../harness/offsets.ts';
import { copyDataDir, restoreDataDir } from '../harness/datadir.ts';
import { readCheckpoint } from '../../src/offsets/file.ts';
import { CdcError } from '../../src/core/errors.ts';
import type { EmbeddedCluster } from '../../src/embedded/cluster.ts';

/** A temporary directory, removed after the file's tests. */
async function workdir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  onTeardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function args(db: TestDatabase, dir: string): string[] {
  return [
    'run',
    '--source',
    db.url,
    '--slot',
    `s_${db.name}`,
    '--publication',
    'safety_pub',
    '--tables',
    'public.acct',
    '--out',
    path.join(dir, 'events'),
    '--offsets',
    path.join(dir, 'offsets.json'),
    '--log-format',
    'json',
  ];
}

async function slotConfirmed(db: TestDatabase): Promise<string | undefined> {
  const { rows } = await db.sql.query<{ lsn: string | null }>(
    `select confirmed_flush_lsn::text as lsn from pg_replication_slots where slot_name = $1`,
    [`s_${db.name}`],
  );
  return rows[0]?.lsn ?? undefined;
}

/** Runs pgcdc until everything written so far is delivered, then stops it cleanly. */
async function deliverAll(db: TestDatabase, dir: string): Promise<void> {
  const proc = startPgcdc(args(db, dir));
  await eventually(
    async () => ((await caughtUp(db.sql, path.join(dir, 'offsets.json'))) ? true : undefined),
    'caught up',
    90_000,
  );
  await stop(proc);
}

async function stop(proc: PgcdcProcess): Promise<void> {
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
}

/** The one `pgcdc: error:` line of a refused run, which must exit 1. */
function refusedWith(result: { code: number; stderr: string }, code: string): string {
  const lines = result.stderr
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('pgcdc:'));
  assert.equal(lines.length, 1, result.stderr);
  assert.equal(result.code, 1, result.stderr);
  const line = lines[0] ?? '';
  assert.ok(line.endsWith(`[${code}]`), line);
  return line;
}

/**
 * Runs pgcdc expecting it to refuse with `code`; fails as soon as `resumed()` shows it went on
 * instead (what it did before the fix), rather than waiting for a process that never exits.
 */
async function expectRefusal(
  db: TestDatabase,
  dir: string,
  code: string,
  resumed: () => Promise<boolean>,
): Promise<string> {
  const proc = startPgcdc(args(db, dir));
  const outcome = await eventually(
    async () => (proc.child.exitCode !== null ? 'exited' : (await resumed()) ? 'resumed' : undefined),
    'pgcdc to refuse',
    120_000,
  );
  if (outcome === 'resumed') {
    proc.kill('SIGKILL');
    assert.fail(`pgcdc resumed instead of refusing with ${code}: ${proc.stderr()}`);
  }
  return refusedWith({ code: await proc.exited, stderr: proc.stderr() }, code);
}

/** The slot's confirmed position moved away from `confirmed`: pgcdc acknowledged something. */
function slotMoved(db: TestDatabase, confirmed: string | undefined): () => Promise<boolean> {
  return async () => (await slotConfirmed(db)) !== confirmed;
}

async function verifyExact(db: TestDatabase, dir: string): Promise<void> {
  const events = await readJsonl(path.join(dir, 'events'));
  assert.equal(new Set(events.map((e) => e.id)).size, events.length, 'no duplicated events');
  const { rows } = await db.sql.query<{ id: number; n: number }>(`select id, n from acct`);
  const source = new Map(rows.map((r) => [JSON.stringify({ id: r.id }), { id: r.id, n: r.n }]));
  assert.deepEqual(compareRows(replay(events).tables.get(`${db.name}.public.acct`), source), {
    lost: 0,
    extra: 0,
    mismatched: 0,
  });
}

async function deliveredIds(dir: string): Promise<Set<number>> {
  return new Set(
    (await readJsonl(path.join(dir, 'events'))).map((e) => Number((e.value.after ?? e.value.before ?? {}).id)),
  );
}

test(
  "an offsets file edited by hand or damaged is OFFSETS_CORRUPT; a consistent one past the server's WAL is " +
    'OFFSET_AHEAD_OF_SERVER',
  async () => {
    const db = await freshDatabase();
    const dir = await workdir('pgcdc-safety-');
    const offsets = path.join(dir, 'offsets.json');
    await db.sql.query(`create table acct (id int primary key, n int not null)`);
    await db.sql.query(`insert into acct select g, g from generate_series(1, 50) g`);
    await deliverAll(db, dir);
    const original = await readFile(offsets, 'utf8');
    const stored = (await readOffsets(offsets)).lsn as string;
    const confirmed = await slotConfirmed(db);

    // The lsn edited by hand, as in the report.
    await writeFile(offsets, original.replace(`"lsn": "${stored}"`, '"lsn": "F/FFFFFF00"'));
    const edited = await expectRefusal(db, dir, 'OFFSETS_CORRUPT', slotMoved(db, confirmed));
    assert.ok(edited.includes(offsets), edited);
    assert.match(edited, /checksum does not match/);

    // One digit of the lsn changed (a damaged file)...
    const digit = stored.at(-1) === '0' ? '1' : '0';
    await writeFile(offsets, original.replace(`"lsn": "${stored}"`, `"lsn": "${stored.slice(0, -1)}${digit}"`));
    await expectRefusal(db, dir, 'OFFSETS_CORRUPT', slotMoved(db, confirmed));
    // ... and every other digit of the file, one at a time: none is trusted.
    for (let i = 0; i < original.length; i++) {
      const c = original[i] ?? '';
      if (!/[0-9]/.test(c)) continue;
      await writeFile(offsets, `${original.slice(0, i)}${c === '7' ? '8' : '7'}${original.slice(i + 1)}`);
      await assert.rejects(
        readCheckpoint(offsets),
        (e: unknown) => e instanceof CdcError && e.code === 'OFFSETS_CORRUPT',
        `digit ${i} flipped`,
      );
    }

    // A consistent file (valid checksum) whose offset the server never reached.
    await writeFile(offsets, original);
    await resealOffsets(offsets, { lsn: 'F/FFFFFF00' });
    const ahead = await expectRefusal(db, dir, 'OFFSET_AHEAD_OF_SERVER', slotMoved(db, confirmed));
    assert.match(ahead, /stored offset F\/FFFFFF00 .* is past the server's WAL \(it ends at [0-9A-F]+\/[0-9A-F]+\)/);
    assert.equal(await slotConfirmed(db), confirmed, 'nothing was acknowledged');

    // The real file back: an exact resume.
    await writeFile(offsets, original);
    await db.sql.query(
      `update acct set n = n + 1 where id % 2 = 0; insert into acct select g, g from generate_series(51, 80) g`,
    );
    await deliverAll(db, dir);
    await verifyExact(db, dir);
  },
);

/** A database on a cluster of its own (the test stops, copies and restores it). */
async function clusterDatabase(cluster: EmbeddedCluster): Promise<TestDatabase> {
  const admin = new pg.Client({ connectionString: cluster.url('postgres') });
  await admin.connect();
  await admin.query(`create database restored`);
  await admin.end();
  return connect(cluster);
}

async function connect(cluster: EmbeddedCluster): Promise<TestDatabase> {
  const sql = new pg.Client({ connectionString: cluster.url('restored') });
  sql.on('error', () => undefined);
  await sql.connect();
  onTeardown(() => sql.end());
  return {
    name: 'restored',
    url: cluster.url('restored'),
    server: { major: cluster.major, url: (d) => cluster.url(d), cluster },
    sql,
  };
}

test(
  'a server restored from an older copy of its data directory is refused, before and after it wrote past ' +
    'the stored offset',
  async () => {
    await testServer();
    const cluster = await startCluster();
    let db = await clusterDatabase(cluster);
    const dir = await workdir('pgcdc-restore-');
    const offsets = path.join(dir, 'offsets.json');
    await db.sql.query(`create table acct (id int primary key, n int not null)`);
    await db.sql.query(`insert into acct select g, g from generate_series(1, 100) g`);
    await deliverAll(db, dir);

    // A cold copy with the slot in it, then more changes delivered from the original.
    await db.sql.end();
    await cluster.stop();
    const copy = await copyDataDir(cluster);
    await cluster.restart();
    db = await connect(cluster);
    for (let i = 0; i < 20; i++)
      await db.sql.query(`insert into acct select g, g from generate_series(${1000 + i * 100}, ${1099 + i * 100}) g`);
    await deliverAll(db, dir);
    const stored = (await readOffsets(offsets)).lsn as string;
    const delivered = await deliveredIds(dir);
    assert.ok(delivered.has(2999));

    // The copy is restored: its WAL ends before the stored offset.
    await db.sql.end();
    await cluster.stop();
    await restoreDataDir(cluster, copy);
    await cluster.restart();
    db = await connect(cluster);
    const copyConfirmed = await slotConfirmed(db);
    const behind = await expectRefusal(db, dir, 'OFFSET_AHEAD_OF_SERVER', slotMoved(db, copyConfirmed));
    assert.ok(behind.includes(stored), behind);

    // The restored server writes a new history past the stored offset (other rows, other sizes).
    let written = 0;
    for (;;) {
      const { rows } = await db.sql.query<{ past: boolean }>(`select pg_current_wal_lsn() > $1::pg_lsn as past`, [
        stored,
      ]);
      if (rows[0]?.past === true) break;
      await db.sql.query(
        `insert into acct select g, g * 7 from generate_series(${100_000 + written}, ${100_000 + written + 36}) g`,
      );
      written += 37;
    }
    await db.sql.query(`insert into acct select g, 1 from generate_series(900000, 900009) g`);
    const newHistoryDelivered = async (): Promise<boolean> =>
      [...(await deliveredIds(dir))].some((id) => id >= 100_000);
    const history = await expectRefusal(
      db,
      dir,
      'SYSTEM_CHANGED',
      async () => (await newHistoryDelivered()) || (await slotMoved(db, copyConfirmed)()),
    );
    assert.match(history, /not the history pgcdc delivered up to the stored offset/);
    assert.equal((await deliveredIds(dir)).size, delivered.size, 'no event of the new history was delivered');
    assert.equal(await slotConfirmed(db), copyConfirmed, 'nothing was acknowledged');
  },
);

test(
  "the slot dropped and recreated between pgcdc's check and START_REPLICATION is refused: nothing " +
    'acknowledged, nothing delivered',
  async () => {
    const db = await freshDatabase();
    const dir = await workdir('pgcdc-slotrace-');
    const slot = `s_${db.name}`;
    await db.sql.query(`create table acct (id int primary key, n int not null)`);
    await db.sql.query(`insert into acct select g, g from generate_series(1, 10) g`);
    await deliverAll(db, dir);
    const before = await deliveredIds(dir);

    const gate = path.join(dir, 'continue');
    const proc = startPgcdc(args(db, dir), { PGCDC_TEST_PAUSE_BEFORE_STREAM: gate });
    await eventually(() => readFile(`${gate}.waiting`).then(() => true), 'pgcdc paused before START_REPLICATION');
    // Changes after the stored offset, then the slot is replaced: they are no longer in any slot.
    await db.sql.query(`insert into acct select g, g from generate_series(100, 149) g`);
    await db.sql.query(`select pg_drop_replication_slot($1)`, [slot]);
    await db.sql.query(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
    const recreated = await slotConfirmed(db);
    await db.sql.query(`insert into acct select g, g from generate_series(200, 209) g`);
    await writeFile(gate, '');
    // Before the fix, pgcdc streamed the new slot as if nothing happened: fail as soon as that shows.
    const exited = await eventually(
      async () => {
        if (proc.child.exitCode !== null) return 'exited';
        return (await deliveredIds(dir)).has(200) ? 'streamed' : undefined;
      },
      'pgcdc to exit or stream',
      120_000,
    );
    assert.equal(
      exited,
      'exited',
      `rows written to the recreated slot were delivered and the 50 before it lost: ${proc.stderr()}`,
    );
    const line = refusedWith({ code: await proc.exited, stderr: proc.stderr() }, 'SLOT_AHEAD_OF_OFFSET');
    assert.match(line, /changed after pgcdc checked it/);
    assert.equal(await slotConfirmed(db), recreated, 'nothing was acknowledged');
    assert.deepEqual(await deliveredIds(dir), before, 'nothing was delivered');
  },
);

test(
  'a slot behind the stored offset on the same history replays up to it, finds the last delivered commit, ' +
    'and resumes exactly',
  async () => {
    await testServer();
    const cluster = await startCluster();
    let db = await clusterDatabase(cluster);
    const dir = await workdir('pgcdc-replay-');
    const offsets = path.join(dir, 'offsets.json');
    await db.sql.query(`create table acct (id int primary key, n int not null)`);
    await db.sql.query(`insert into acct select g, g from generate_series(1, 100) g`);
    await deliverAll(db, dir);

    // Changes the slot has not confirmed yet are in the copy's WAL; pgcdc then delivers them from the original.
    for (let i = 0; i < 10; i++)
      await db.sql.query(
        `update acct set n = n + ${i} where id % 10 = ${i}; insert into acct values (${200 + i}, ${i})`,
      );
    await db.sql.end();
    await cluster.stop();
    const copy = await copyDataDir(cluster);
    await cluster.restart();
    db = await connect(cluster);
    await deliverAll(db, dir);
    const stored = await readOffsets(offsets);
    const lastCommit = stored.lastCommit as { endLsn: string; xid: number };
    assert.ok(lastCommit.xid > 0, JSON.stringify(stored));

    // The same history from the copy: its slot is behind; the stored offset is the last commit's end
    // (the original's idle WAL after it is not in the copy).
    await db.sql.end();
    await cluster.stop();
    await restoreDataDir(cluster, copy);
    await cluster.restart();
    db = await connect(cluster);
    await resealOffsets(offsets, { lsn: lastCommit.endLsn });
    const confirmed = await slotConfirmed(db);
    const { rows } = await db.sql.query<{ behind: boolean }>(`select $1::pg_lsn < $2::pg_lsn as behind`, [
      confirmed,
      lastCommit.endLsn,
    ]);
    assert.equal(rows[0]?.behind, true, "the copy's slot is behind the stored offset");

    await db.sql.query(
      `delete from acct where id % 7 = 0; insert into acct select g, g from generate_series(300, 349) g`,
    );
    const proc = startPgcdc(args(db, dir));
    await eventually(async () => ((await caughtUp(db.sql, offsets)) ? true : undefined), 'caught up', 90_000);
    await stop(proc);
    assert.ok(proc.stderr().includes('replaying the transactions in between'), proc.stderr());
    await verifyExact(db, dir);
  },
);
