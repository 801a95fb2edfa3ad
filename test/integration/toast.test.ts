/**
 * toast.mode with values stored out of line (over 8 kB of random text, STORAGE EXTERNAL): an
 * update that leaves them unchanged gives the placeholder and names the column in
 * source.unavailable_columns (placeholder), leaves it out (omit), or carries the last value (fill,
 * also after a restart; a row never seen is a cold miss that falls back to the placeholder).
 * REPLICA IDENTITY FULL always carries the value.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freshDatabase, eventually, type TestDatabase } from '../harness/pg.ts';
import { commitOrder, readJsonl, startPgcdc, type DeliveredEvent, type PgcdcProcess } from '../harness/cli.ts';

const PLACEHOLDER = '__pgcdc_unavailable_value';

async function setup(db: TestDatabase): Promise<{ big: string; early: string }> {
  for (const table of ['docs', 'fulldocs']) {
    await db.sql.query(`create table ${table} (id int primary key, n int, body text)`);
    await db.sql.query(`alter table ${table} alter column body set storage external`);
  }
  await db.sql.query(`alter table fulldocs replica identity full`);
  const random = `(select string_agg(md5(random()::text), '') from generate_series(1, 300))`;
  // A row that exists before pgcdc starts: the fill store has never seen it.
  await db.sql.query(`insert into docs values (2, 0, ${random})`);
  const { rows } = await db.sql.query<{ big: string; early: string }>(
    `select ${random} as big, (select body from docs where id = 2) as early`,
  );
  const big = rows[0]?.big ?? '';
  const early = rows[0]?.early ?? '';
  assert.ok(big.length > 8192 && early.length > 8192);
  return { big, early };
}

function start(db: TestDatabase, dir: string): PgcdcProcess {
  return startPgcdc([
    'run',
    '--config',
    path.join(dir, 'pgcdc.yaml'),
    '--source',
    db.url,
    '--slot',
    `s_${db.name}`,
    '--publication',
    'toast_pub',
    '--tables',
    'public.docs,public.fulldocs',
    '--out',
    path.join(dir, 'events'),
    '--offsets',
    path.join(dir, 'offsets.json'),
    '--log-format',
    'json',
    '--log-level',
    'debug',
    '--snapshot-mode',
    'never',
  ]);
}

async function events(dir: string, count: number): Promise<DeliveredEvent[]> {
  return eventually(async () => {
    const all = commitOrder(await readJsonl(path.join(dir, 'events')));
    return all.length >= count ? all : undefined;
  }, `${count} events`);
}

async function stop(proc: PgcdcProcess): Promise<void> {
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
}

function unavailable(e: DeliveredEvent | undefined): unknown {
  return e?.value.source.unavailable_columns;
}

for (const mode of ['placeholder', 'omit', 'fill'] as const) {
  test(`toast.mode ${mode}`, async () => {
    const db = await freshDatabase();
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-toast-'));
    const { big, early } = await setup(db);
    await writeFile(path.join(dir, 'pgcdc.yaml'), JSON.stringify({ toast: { mode } }));
    let proc = start(db, dir);
    await eventually(
      async () =>
        (await db.sql.query(`select 1 from pg_replication_slots where slot_name = $1 and active`, [`s_${db.name}`]))
          .rowCount === 1
          ? true
          : undefined,
      'slot',
    );
    await db.sql.query(`insert into docs values (1, 0, $1)`, [big]);
    await db.sql.query(`insert into fulldocs values (1, 0, $1)`, [big]);
    await db.sql.query(`update docs set n = 1 where id = 1`);
    await db.sql.query(`update fulldocs set n = 1 where id = 1`);
    await db.sql.query(`update docs set n = 1 where id = 2`);
    let all = await events(dir, 5);
    const [insert, , update, fullUpdate, cold] = [all[0], all[1], all[2], all[3], all[4]];
    assert.equal(insert?.value.after?.body, big);
    assert.equal(unavailable(insert), undefined);

    // REPLICA IDENTITY FULL: the old row carries the value, whatever the mode.
    assert.equal(fullUpdate?.value.after?.body, big);
    assert.equal(fullUpdate?.value.before?.body, big);
    assert.equal(unavailable(fullUpdate), undefined);

    if (mode === 'placeholder') {
      assert.deepEqual(update?.value.after, { id: 1, n: 1, body: PLACEHOLDER });
      assert.deepEqual(unavailable(update), ['body']);
    } else if (mode === 'omit') {
      assert.deepEqual(update?.value.after, { id: 1, n: 1 });
      assert.deepEqual(unavailable(update), ['body']);
    } else {
      assert.deepEqual(update?.value.after, { id: 1, n: 1, body: big });
      assert.equal(unavailable(update), undefined);
    }
    // A row inserted before pgcdc started: nothing to fill from.
    assert.equal(cold?.key?.id, 2);
    assert.deepEqual(cold?.value.after, mode === 'omit' ? { id: 2, n: 1 } : { id: 2, n: 1, body: PLACEHOLDER });
    assert.deepEqual(unavailable(cold), ['body']);
    if (mode === 'fill') assert.match(proc.stderr(), /TOAST fill: cold miss/);
    await stop(proc);
    if (mode !== 'fill') return;

    // Restart: the store is back at the resume point. A row whose value changed while pgcdc was
    // down is filled with the new value (seen in the update that set it), and a later update of
    // row 2, whose value pgcdc learnt from nothing, stays a miss.
    const newer = `${early.slice(0, 100)}${big}`;
    await db.sql.query(`update docs set n = 2 where id = 1`);
    await db.sql.query(`update docs set n = 3, body = $1 where id = 1`, [newer]);
    await db.sql.query(`update docs set n = 4 where id = 1`);
    proc = start(db, dir);
    all = await events(dir, 8);
    await db.sql.query(
      `delete from docs where id = 1; insert into docs values (1, 5, 'short'); update docs set n = 6 where id = 1`,
    );
    all = await events(dir, 11);
    await stop(proc);
    assert.deepEqual(
      all
        .slice(5)
        .map((e) => [
          e.value.op,
          e.value.after?.n,
          e.value.after?.body === big ? 'big' : e.value.after?.body === newer ? 'newer' : e.value.after?.body,
        ]),
      [
        ['u', 2, 'big'],
        ['u', 3, 'newer'],
        ['u', 4, 'newer'],
        ['d', undefined, undefined],
        ['c', 5, 'short'],
        ['u', 6, 'short'],
      ],
    );
  });
}
