/**
 * A crash during the initial snapshot of a table without a key (read by ctid): the restart must
 * deliver every row exactly once, with a workload writing to the table all along (inserts of
 * identical rows, and under REPLICA IDENTITY FULL updates and deletes too). The output is replayed
 * onto an empty multiset and compared with the table.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freshDatabase, eventually, onTeardown, type TestDatabase } from '../harness/pg.ts';
import { readJsonl, startPgcdc } from '../harness/cli.ts';
import { outDir, replayMultiset, storedProgress } from '../harness/snapshots.ts';

const ROWS = 200_000;

function runArgs(db: TestDatabase, dir: string, extra: string[] = []): string[] {
  return [
    'run',
    '--source',
    db.url,
    '--slot',
    `s_${db.name}`,
    '--publication',
    'keyless_pub',
    '--tables',
    'public.bag',
    '--out',
    outDir(dir),
    '--offsets',
    path.join(dir, 'offsets.json'),
    '--log-format',
    'json',
    '--snapshot-progress',
    'off',
    ...extra,
  ];
}

/**
 * Writes to `bag` until stopped: identical rows inserted, and (FULL) one row updated and one deleted per transaction.
 * */
function keylessWorkload(db: TestDatabase, updates: boolean): { stop: () => Promise<number> } {
  let running = true;
  const done = (async () => {
    let transactions = 0;
    while (running) {
      const v = Math.floor(Math.random() * 50);
      const changes = updates
        ? `update bag set note = note || '+' where ctid = (select ctid from bag where v = ${(v + 7) % 50} limit 1);
           delete from bag where ctid = (select ctid from bag where v = ${(v + 13) % 50} limit 1);`
        : '';
      await db.sql.query(`begin; insert into bag select ${v}, 'w' from generate_series(1, 3); ${changes} commit`);
      transactions++;
    }
    return transactions;
  })();
  return {
    stop: async () => {
      running = false;
      return done;
    },
  };
}

async function snapshotFinished(db: TestDatabase, dir: string): Promise<true | undefined> {
  const state = await storedProgress(path.join(dir, 'offsets.json'));
  if (!state || state.snapshot?.state !== 'done') return undefined;
  return state.incremental?.tables.some((t) => !t.cursor.done && t.stopped !== true) ? undefined : true;
}

async function caughtUp(db: TestDatabase, dir: string): Promise<true | undefined> {
  if (!(await snapshotFinished(db, dir))) return undefined;
  const state = await storedProgress(path.join(dir, 'offsets.json'));
  const { rows } = await db.sql.query<{ ok: boolean }>(`select $1::pg_lsn >= pg_current_wal_lsn() as ok`, [state?.lsn]);
  return rows[0]?.ok ? true : undefined;
}

async function crashMidSnapshot(
  db: TestDatabase,
  identity: 'full' | 'insert-only',
): Promise<{ stderr: string; events: number }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-keyless-'));
  onTeardown(() => rm(dir, { recursive: true, force: true }));
  // Many identical rows: a replay cannot tell copies apart, so one row too many or too few shows.
  await db.sql.query(`create table bag (v int not null, note text not null)`);
  await db.sql.query(`insert into bag select g % 1000, 'n' || (g % 1000) from generate_series(1, ${ROWS}) g`);
  if (identity === 'full') await db.sql.query(`alter table bag replica identity full`);
  // Without a key and without FULL, PostgreSQL refuses updates and deletes of a table published
  // for them: such a table is captured through a publication of inserts (and truncates) only.
  else await db.sql.query(`create publication keyless_pub for table bag with (publish = 'insert, truncate')`);
  const writes = keylessWorkload(db, identity === 'full');
  try {
    let proc = startPgcdc(runArgs(db, dir, ['--snapshot-chunk-size', '500']));
    await eventually(async () => {
      const table = (await storedProgress(path.join(dir, 'offsets.json')))?.snapshot;
      const progress = table?.tables?.[0];
      return table?.state === 'running' && progress !== undefined && progress.emitted > 0 && !progress.cursor.done
        ? true
        : undefined;
    }, 'a part of the table stored').catch((error: unknown) => {
      throw new Error(`${String(error)}\n${proc.stderr()}`);
    });
    proc.kill('SIGKILL');
    await proc.exited;
    const stored = (await storedProgress(path.join(dir, 'offsets.json')))?.snapshot?.tables?.[0];
    assert.ok(
      stored !== undefined && !stored.cursor.done && stored.emitted < ROWS,
      'killed in the middle of the table',
    );
    proc = startPgcdc(runArgs(db, dir, ['--snapshot-chunk-size', '5000']));
    // The workload goes on while the snapshot is finished, and stops once it is.
    await eventually(() => snapshotFinished(db, dir), 'the snapshot finished after the restart', 120_000).catch(
      (error: unknown) => {
        throw new Error(`${String(error)}\n${proc.stderr()}`);
      },
    );
    assert.ok((await writes.stop()) > 0, 'the workload wrote');
    await eventually(() => caughtUp(db, dir), 'caught up', 120_000);
    proc.kill('SIGTERM');
    assert.equal(await proc.exited, 0, proc.stderr());
    const events = (await readJsonl(outDir(dir))).filter((e) => e.topic === `${db.name}.public.bag`);
    const { rows } = await db.sql.query<Record<string, unknown>>('select v, note from bag');
    assert.deepEqual(
      replayMultiset(events, rows),
      { lost: 0, extra: 0, duplicates: 0, missingBefore: 0 },
      `replay of ${identity} onto an empty multiset`,
    );
    return { stderr: proc.stderr(), events: events.length };
  } finally {
    await writes.stop();
  }
}

test(
  'keyless table, REPLICA IDENTITY FULL: SIGKILL mid initial snapshot under inserts, updates and deletes, ' +
    'then a restart: exact',
  async () => {
    const db = await freshDatabase();
    const { stderr } = await crashMidSnapshot(db, 'full');
    // Rows updated or deleted since the snapshot cannot be read as it saw them: taken again, the
    // output cut back to where it began.
    assert.match(stderr, /cannot be continued exactly: taking it again on a fresh slot, the output cut back/);
    assert.match(stderr, /public\.bag has no key and REPLICA IDENTITY FULL/);
  },
);

test(
  'keyless table in an insert-only publication: ' + 'SIGKILL mid initial snapshot under inserts, then a restart: exact',
  async () => {
    const db = await freshDatabase();
    const { stderr } = await crashMidSnapshot(db, 'insert-only');
    // Continued online, leaving out by xmin the rows inserted since the snapshot.
    assert.match(stderr, /continuing it online after its last stored chunk/);
    assert.match(stderr, /read online as the interrupted snapshot saw them/);
    assert.doesNotMatch(stderr, /taking it again/);
  },
);

test(
  'initial_only, keyless table: SIGKILL mid-table while rows are updated, ' + 'then a rerun: every row once',
  async () => {
    const db = await freshDatabase();
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-keyless-only-'));
    onTeardown(() => rm(dir, { recursive: true, force: true }));
    await db.sql.query(`create table bag (v int not null, note text not null)`);
    await db.sql.query(`insert into bag select g % 1000, 'n' || (g % 1000) from generate_series(1, ${ROWS}) g`);
    // No publication: initial_only needs none, and PostgreSQL lets the keyless table be updated.
    const writes = keylessWorkload(db, true);
    const args = [
      'run',
      '--source',
      db.url,
      '--snapshot-mode',
      'initial_only',
      '--tables',
      'public.bag',
      '--out',
      outDir(dir),
      '--offsets',
      path.join(dir, 'offsets.json'),
      '--log-format',
      'json',
      '--snapshot-progress',
      'off',
      '--snapshot-chunk-size',
      '500',
    ];
    try {
      const proc = startPgcdc(args);
      await eventually(async () => {
        const snapshot = (await storedProgress(path.join(dir, 'offsets.json')))?.snapshot;
        const progress = snapshot?.tables?.[0];
        return snapshot?.state === 'running' && progress !== undefined && progress.emitted > 0 && !progress.cursor.done
          ? true
          : undefined;
      }, 'a part of the table stored');
      proc.kill('SIGKILL');
      await proc.exited;
      // Rows updated after the first run's snapshot, some of them on pages it already delivered.
      await db.sql.query(`update bag set note = note || '*' where ctid in (select ctid from bag limit 2000)`);
    } finally {
      await writes.stop();
    }
    const proc = startPgcdc(args);
    assert.equal(await proc.exited, 0, proc.stderr());
    const events = (await readJsonl(outDir(dir))).filter((e) => e.topic === `${db.name}.public.bag`);
    const { rows } = await db.sql.query<Record<string, unknown>>('select v, note from bag');
    assert.deepEqual(replayMultiset(events, rows), { lost: 0, extra: 0, duplicates: 0, missingBefore: 0 });
    assert.match(proc.stderr(), /taken again from its start, the output cut back/);
  },
);
