/**
 * Snapshot events carry the key the stream uses: a table without a primary key under REPLICA
 * IDENTITY USING INDEX is keyed by the index's columns in its r events (initial and incremental),
 * as in its c/u/d events. And the snapshot's final row is marked "last" even when the tables read
 * last are empty.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freshDatabase, eventually, onTeardown, type TestDatabase } from '../harness/pg.ts';
import {
  compareRows,
  parseLines,
  readJsonl,
  replay,
  runPgcdc,
  startPgcdc,
  type DeliveredEvent,
} from '../harness/cli.ts';
import { incrementalDone, outDir, storedProgress } from '../harness/snapshots.ts';

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  onTeardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function runArgs(db: TestDatabase, dir: string, tables: string, extra: string[] = []): string[] {
  return [
    'run',
    '--source',
    db.url,
    '--slot',
    `s_${db.name}`,
    '--publication',
    'keys_pub',
    '--tables',
    tables,
    '--offsets',
    path.join(dir, 'offsets.json'),
    '--log-format',
    'json',
    ...extra,
  ];
}

async function caughtUp(db: TestDatabase, dir: string): Promise<true | undefined> {
  const state = await storedProgress(path.join(dir, 'offsets.json'));
  if (!state || state.snapshot?.state === 'running') return undefined;
  if (state.incremental?.tables.some((t) => !t.cursor.done && t.stopped !== true)) return undefined;
  const { rows } = await db.sql.query<{ ok: boolean }>(`select $1::pg_lsn >= pg_current_wal_lsn() as ok`, [state.lsn]);
  return rows[0]?.ok ? true : undefined;
}

test(
  'REPLICA IDENTITY USING INDEX: snapshot reads are keyed by the index columns, ' + 'like the streamed events',
  async () => {
    const db = await freshDatabase();
    const dir = await tempDir('pgcdc-identkey-');
    // The index lists its columns out of table order on purpose: pgoutput flags key columns in
    // table order, so the key is {b, a}.
    await db.sql.query(`create table idx (note text, b int not null, a text not null, n int);
    create unique index idx_ab on idx (a, b);
    alter table idx replica identity using index idx_ab;
    insert into idx select 'n' || g, g, 'k' || (g % 3), g from generate_series(1, 40) g`);
    const proc = startPgcdc(runArgs(db, dir, 'public.idx', ['--out', outDir(dir), '--snapshot-chunk-size', '7']));
    await eventually(() => caughtUp(db, dir), 'the initial snapshot done');
    await db.sql.query(
      `insert into idx values ('new', 100, 'k9', 1); update idx set n = n + 1 where b <= 3; delete from idx ` +
        `where b = 4`,
    );
    // An incremental snapshot of the same table, with writes going on meanwhile.
    const request = await runPgcdc(['snapshot', 'public.idx', '--offsets', path.join(dir, 'offsets.json')]);
    assert.equal(request.code, 0, request.stderr);
    await db.sql.query(`update idx set n = n + 10 where b between 10 and 20; delete from idx where b = 30`);
    await eventually(
      async () => (incrementalDone(await storedProgress(path.join(dir, 'offsets.json'))) ? true : undefined),
      'the incremental snapshot done',
    );
    await eventually(() => caughtUp(db, dir), 'caught up');
    proc.kill('SIGTERM');
    assert.equal(await proc.exited, 0, proc.stderr());

    const events = (await readJsonl(outDir(dir))).filter((e) => e.topic === `${db.name}.public.idx`);
    const keyShape = (e: DeliveredEvent): string => JSON.stringify(Object.keys(e.key ?? {}));
    const byOp = (op: string, snapshot?: string): DeliveredEvent[] =>
      events.filter((e) => e.value.op === op && (snapshot === undefined || e.value.source.snapshot === snapshot));
    const initial = events.filter((e) => e.value.op === 'r' && e.value.source.snapshot !== 'incremental');
    const incremental = byOp('r', 'incremental');
    assert.equal(initial.length, 40);
    assert.ok(incremental.length > 0, 'the incremental snapshot emitted rows');
    for (const op of ['c', 'u', 'd']) assert.ok(byOp(op).length > 0, `streamed ${op} events`);
    // Every event is keyed by {b, a} (table order), with the row's values.
    for (const e of events) {
      assert.equal(keyShape(e), '["b","a"]', `${e.value.op} event ${e.id} key ${JSON.stringify(e.key)}`);
      const row = e.value.after ?? e.value.before ?? {};
      assert.deepEqual(e.key, { b: row.b, a: row.a });
    }
    // Keys of snapshot reads match the streamed events' keys for the same rows.
    const updated = byOp('u').map((e) => JSON.stringify(e.key));
    const read = new Set(initial.map((e) => JSON.stringify(e.key)));
    for (const key of updated.slice(0, 3)) assert.ok(read.has(key), `the read of ${key} has the key its update has`);
    // The incremental window matched stream changes by these keys: the replay is exact.
    const { rows } = await db.sql.query<Record<string, unknown>>('select note, b, a, n from idx');
    const source = new Map(rows.map((r) => [JSON.stringify({ b: r.b, a: r.a }), r]));
    const replayed = replay(events);
    assert.equal(replayed.duplicates, 0);
    assert.deepEqual(compareRows(replayed.tables.get(`${db.name}.public.idx`), source), {
      lost: 0,
      extra: 0,
      mismatched: 0,
    });
  },
);

test('the snapshot\'s final row is marked "last" when the tables read last are empty', async (t) => {
  const db = await freshDatabase();
  await db.sql.query(`create table a_rows (id int primary key, v text);
    create table b_keyless (v text);
    alter table b_keyless replica identity full;
    create table y_empty (id int primary key);
    create table z_empty (v text);
    alter table z_empty replica identity full;
    insert into a_rows select g, 'a' || g from generate_series(1, 500) g;
    insert into b_keyless select 'b' || g from generate_series(1, 300) g`);
  const tables = 'public.a_rows,public.b_keyless,public.y_empty,public.z_empty';
  const assertLast = (stdout: string, what: string): void => {
    const reads = parseLines(stdout).filter((e) => e.value.op === 'r');
    assert.equal(reads.length, 800, what);
    const last = reads.filter((e) => e.value.source.snapshot === 'last');
    assert.equal(last.length, 1, `${what}: one row marked last`);
    assert.equal(reads[reads.length - 1]?.id, last[0]?.id, `${what}: the marked row is the final read`);
  };
  for (const parallelism of ['1', '2']) {
    await t.test(`initial_only, parallelism ${parallelism}`, async () => {
      const dir = await tempDir('pgcdc-last-');
      const result = await runPgcdc(
        runArgs(db, dir, tables, [
          '--sink',
          'stdout',
          '--snapshot-mode',
          'initial_only',
          '--snapshot-chunk-size',
          '100',
          '--snapshot-parallelism',
          parallelism,
        ]),
      );
      assert.equal(result.code, 0, result.stderr);
      assertLast(result.stdout, `initial_only, parallelism ${parallelism}`);
    });
  }
  await t.test('initial', async () => {
    const dir = await tempDir('pgcdc-last-');
    const proc = startPgcdc(
      runArgs(db, dir, tables, ['--sink', 'stdout', '--snapshot-chunk-size', '100', '--snapshot-parallelism', '1']),
    );
    await eventually(() => caughtUp(db, dir), 'the initial snapshot done').catch((error: unknown) => {
      throw new Error(`${String(error)}\n${proc.stderr()}`);
    });
    proc.kill('SIGTERM');
    assert.equal(await proc.exited, 0, proc.stderr());
    assertLast(proc.stdout(), 'initial');
  });
});
