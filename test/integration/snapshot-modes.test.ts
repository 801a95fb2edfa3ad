/**
 * Snapshot modes and table choices on a real PostgreSQL: always (an incremental snapshot on every
 * start), initial_only (read, exit 0, no slot), when_needed (a lost slot is answered with a new slot
 * and a new snapshot), snapshot.skip, parallel reads of several tables, a keyless table, and the
 * read-only method with a user that may write nothing at all.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freshDatabase, eventually, type TestDatabase } from '../harness/pg.ts';
import { compareRows, readJsonl, replay, runPgcdc, startPgcdc } from '../harness/cli.ts';
import {
  assertExact,
  caughtUp,
  incrementalDone,
  outDir,
  storedProgress,
  verifyTable,
  workload,
} from '../harness/snapshots.ts';

function runArgs(db: TestDatabase, dir: string, tables: string, extra: string[] = [], url = db.url): string[] {
  return [
    'run',
    '--source',
    url,
    '--slot',
    `s_${db.name}`,
    '--publication',
    'modes_pub',
    '--tables',
    tables,
    '--out',
    outDir(dir),
    '--offsets',
    path.join(dir, 'offsets.json'),
    '--log-format',
    'json',
    '--snapshot-progress',
    'lines',
    ...extra,
  ];
}

async function seed(db: TestDatabase, table: string, rows: number, key = true): Promise<void> {
  await db.sql.query(`create table ${table} (id int ${key ? 'primary key' : 'not null'}, n int not null, label text)`);
  await db.sql.query(`insert into ${table} select g, g % 97, 'row ' || g from generate_series(1, ${rows}) g`);
}

async function until(what: string, probe: () => Promise<boolean>): Promise<void> {
  await eventually(async () => ((await probe()) ? true : undefined), what, 120_000);
}

async function stopAfterCatchUp(db: TestDatabase, dir: string, proc: ReturnType<typeof startPgcdc>): Promise<void> {
  await until('the stream to catch up', () => caughtUp(db.sql, path.join(dir, 'offsets.json')));
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
}

test(
  'always: every start takes an incremental snapshot; several tables in parallel, a keyless one, and a ' +
    'skipped one',
  async () => {
    const db = await freshDatabase();
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-always-'));
    const offsets = path.join(dir, 'offsets.json');
    await seed(db, 'a', 3000);
    await seed(db, 'b', 4000);
    await seed(db, 'c', 2500, false);
    await db.sql.query(`alter table c replica identity full`);
    await seed(db, 'd', 100);
    const tables = 'public.a,public.b,public.c,public.d';
    const extra = [
      '--snapshot-mode',
      'always',
      '--snapshot-parallelism',
      '3',
      '--snapshot-chunk-size',
      '300',
      '--snapshot-skip',
      'public.d',
    ];
    let proc = startPgcdc(runArgs(db, dir, tables, extra));
    await until('the initial snapshot', async () => (await storedProgress(offsets))?.snapshot?.state === 'done');
    await stopAfterCatchUp(db, dir, proc);
    const first = await readJsonl(outDir(dir));
    assert.equal(first.filter((e) => e.value.op === 'r').length, 3000 + 4000 + 2500, 'a, b and c read once; d skipped');
    assert.equal(first.filter((e) => e.value.source.snapshot === 'last').length, 1);

    // The second start resumes streaming and reads every table again, online, while writes go on.
    proc = startPgcdc(runArgs(db, dir, tables, extra));
    const load = workload(db, 'a', 3100);
    await until('the incremental snapshot', async () => incrementalDone(await storedProgress(offsets)));
    await load.stop();
    await stopAfterCatchUp(db, dir, proc);
    assert.match(proc.stderr(), /snapshot mode always/);
    assert.match(proc.stderr(), /has no primary key/);
    const verdictA = await verifyTable(db, outDir(dir), 'a');
    assert.deepEqual(
      { lost: verdictA.lost, extra: verdictA.extra, mismatched: verdictA.mismatched, duplicates: verdictA.duplicates },
      { lost: 0, extra: 0, mismatched: 0, duplicates: 0 },
    );
    const all = await readJsonl(outDir(dir));
    const incremental = all.filter((e) => e.value.source.snapshot === 'incremental');
    assert.equal(incremental.filter((e) => e.topic.endsWith('.b')).length, 4000);
    assert.equal(
      incremental.filter((e) => e.topic.endsWith('.c')).length,
      2500,
      'the keyless table is read by ctid ranges',
    );
    assert.equal(all.filter((e) => e.topic.endsWith('.d')).length, 0, 'snapshot.skip');
    const stored = (await storedProgress(offsets))?.incremental?.tables.map((t) => `${t.table}:${t.emitted}`).sort();
    assert.equal(stored?.length, 3);
  },
);

test('initial_only: reads the tables and exits 0 without a slot; a second run has nothing to do', async () => {
  const db = await freshDatabase();
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-only-'));
  await seed(db, 'items', 5000);
  const result = await runPgcdc(
    runArgs(db, dir, 'public.items', ['--snapshot-mode', 'initial_only', '--snapshot-chunk-size', '700']),
  );
  assert.equal(result.code, 0, result.stderr);
  const events = await readJsonl(outDir(dir));
  assert.equal(events.length, 5000);
  assert.equal(events.filter((e) => e.value.source.snapshot === 'last').length, 1);
  assertExact(await verifyTable(db, outDir(dir), 'items'), 'initial_only replay');
  const slots = await db.sql.query(`select 1 from pg_replication_slots where database = current_database()`);
  assert.equal(slots.rowCount, 0, 'no slot');
  const again = await runPgcdc(runArgs(db, dir, 'public.items', ['--snapshot-mode', 'initial_only']));
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /already complete/);
  assert.equal((await readJsonl(outDir(dir))).length, 5000);
});

test('when_needed: a lost slot is answered with a new slot and a new snapshot; initial refuses instead', async () => {
  const db = await freshDatabase();
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-needed-'));
  await seed(db, 'items', 2000);
  let proc = startPgcdc(runArgs(db, dir, 'public.items', ['--snapshot-mode', 'when_needed']));
  await until(
    'the initial snapshot',
    async () => (await storedProgress(path.join(dir, 'offsets.json')))?.snapshot?.state === 'done',
  );
  await stopAfterCatchUp(db, dir, proc);
  await db.sql.query(`select pg_drop_replication_slot('s_${db.name}')`);
  await db.sql.query(`update items set n = -5 where id <= 10; delete from items where id > 1990`);
  const refused = await runPgcdc(runArgs(db, dir, 'public.items', ['--snapshot-mode', 'initial']));
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /is gone/);
  proc = startPgcdc(runArgs(db, dir, 'public.items', ['--snapshot-mode', 'when_needed']));
  await until('the new snapshot', async () => {
    const state = await storedProgress(path.join(dir, 'offsets.json'));
    return (
      state?.snapshot?.state === 'done' &&
      (await readJsonl(outDir(dir))).filter((e) => e.value.op === 'r').length === 2000 + 1990
    );
  });
  await stopAfterCatchUp(db, dir, proc);
  assert.match(proc.stderr(), /when_needed/);
  // The events of the first slot stay. The new snapshot restates every row that exists; rows
  // deleted while no slot existed are invisible to any log (docs/snapshots.md): replaying from the
  // new snapshot on gives the table exactly, replaying everything shows exactly those 10 as extra.
  const all = (await verifyTable(db, outDir(dir), 'items')).events;
  const firstId = all.find((e) => e.value.op === 'r')?.id.split(':')[0];
  const start = all.findIndex((e) => e.value.op === 'r' && e.id.split(':')[0] !== firstId);
  assert.ok(start > 0, 'a second snapshot with its own ids');
  const source = new Map(
    (await db.sql.query<Record<string, unknown>>(`select * from items`)).rows.map((r) => [
      JSON.stringify({ id: r.id }),
      r,
    ]),
  );
  assert.deepEqual(compareRows(replay(all.slice(start)).tables.get(`${db.name}.public.items`), source), {
    lost: 0,
    extra: 0,
    mismatched: 0,
  });
  assert.deepEqual(compareRows(replay(all).tables.get(`${db.name}.public.items`), source), {
    lost: 0,
    extra: 10,
    mismatched: 0,
  });
});

test('read-only method with a user that may write nothing at all', async () => {
  const db = await freshDatabase();
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-ro-'));
  await seed(db, 'items', 8000);
  const role = `ro_${db.name}`;
  await db.sql.query(`create role ${role} login replication password 'ro-secret'`);
  await db.sql.query(`revoke create on schema public from public`);
  await db.sql.query(`grant usage on schema public to ${role}; grant select on items to ${role}`);
  await db.sql.query(`create publication modes_pub for table items`);
  const url = new URL(db.url);
  url.username = role;
  url.password = 'ro-secret';
  const roUrl = url.toString();
  const proc = startPgcdc(
    runArgs(
      db,
      dir,
      'public.items',
      [
        '--snapshot-mode',
        'never',
        '--snapshot-method',
        'read-only',
        '--no-create-publication',
        '--snapshot-chunk-size',
        '900',
      ],
      roUrl,
    ),
  );
  await until('the first checkpoint', async () => (await storedProgress(path.join(dir, 'offsets.json'))) !== undefined);
  const load = workload(db, 'items', 8500);
  const asked = await runPgcdc(['snapshot', 'public.items', '--offsets', path.join(dir, 'offsets.json')]);
  assert.equal(asked.code, 0, asked.stderr);
  await until('the backfill', async () => incrementalDone(await storedProgress(path.join(dir, 'offsets.json'))));
  await load.stop();
  await stopAfterCatchUp(db, dir, proc);
  assertExact(await verifyTable(db, outDir(dir), 'items'), 'read-only replay');
  // The user really cannot write: not to the table, not a message, not a table of its own.
  const pg = (await import('pg')).default;
  const ro = new pg.Client({ connectionString: roUrl });
  await ro.connect();
  try {
    await assert.rejects(ro.query(`insert into items values (-1, 0, null)`), /permission denied/);
    await assert.rejects(ro.query(`create table mine (x int)`), /permission denied/);
  } finally {
    await ro.end();
  }
});
