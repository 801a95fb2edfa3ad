/**
 * Generated columns (PostgreSQL 12+). On 18+ pgcdc's publication publishes stored generated
 * columns, so every event (snapshot reads included) carries them and the application's UPDATE of a
 * REPLICA IDENTITY FULL table with one still works; it never creates a publication that breaks
 * writes (REPLICA IDENTITY FULL with a virtual generated column). Where the stream cannot carry
 * them (12-17, or a publication without publish_generated_columns), the snapshot leaves them out
 * too, and `pgcdc check` names the tables.
 *
 * Runs on the default major (18); on another one with e.g. `PGCDC_TEST_PG=15 node --import tsx
 * --test test/integration/generated-columns.test.ts` (also part of `npm run test:smoke`, which CI
 * runs on every major).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freshDatabase, eventually, type TestDatabase } from '../harness/pg.ts';
import { readJsonl, runPgcdc, startPgcdc, type DeliveredEvent, type PgcdcProcess } from '../harness/cli.ts';

interface JsonReport {
  errors: { code: string; message: string; fix: string }[];
  warnings: { code: string; message: string; fix: string }[];
}

async function check(db: TestDatabase, publication: string, tables: string): Promise<JsonReport> {
  const out = await runPgcdc([
    'check',
    '--source',
    db.url,
    '--json',
    '--publication',
    publication,
    '--slot',
    `s_${db.name}`,
    '--tables',
    tables,
  ]);
  return JSON.parse(out.stdout) as JsonReport;
}

/**
 * Waits until pgcdc streams (its log says so: the slot is also active during the initial snapshot,
 * when DDL or writes would race the snapshot's start); fails at once, with its log, if it exits.
 */
async function streaming(_db: TestDatabase, proc: PgcdcProcess): Promise<void> {
  const state = await eventually(() => {
    if (proc.child.exitCode !== null) return 'exited';
    return proc.stderr().includes('"msg":"streaming"') ? 'streaming' : undefined;
  }, 'streaming');
  assert.equal(state, 'streaming', proc.stderr());
}

function runArgs(db: TestDatabase, dir: string, publication: string, tables: string): string[] {
  return [
    'run',
    '--source',
    db.url,
    '--slot',
    `s_${db.name}`,
    '--publication',
    publication,
    '--tables',
    tables,
    '--out',
    path.join(dir, 'events'),
    '--offsets',
    path.join(dir, 'offsets.json'),
    '--log-format',
    'json',
  ];
}

test(
  'PostgreSQL 18: stored generated columns are in every event, and UPDATE works on a REPLICA IDENTITY FULL ' +
    'table with one',
  async (t) => {
    const db = await freshDatabase();
    if (db.server.major < 18) return t.skip('publish_generated_columns exists from PostgreSQL 18');
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-gen18-'));
    await db.sql.query(
      `create table g (id int primary key, a int, total int generated always as (a * 10) stored);
    alter table g replica identity full; insert into g (id, a) values (1, 1);
    create table w (id int primary key, a int, plus int generated always as (a + 1) virtual); insert into w ` +
        `(id, a) values (1, 1)`,
    );
    const proc = startPgcdc(runArgs(db, dir, 'gen_pub', 'public.g,public.w'));
    await streaming(db, proc);
    const pub = await db.sql.query<{ gencols: string }>(
      `select pubgencols::text as gencols from pg_publication where pubname = 'gen_pub'`,
    );
    assert.equal(pub.rows[0]?.gencols, 's', 'pgcdc created its publication WITH (publish_generated_columns = stored)');
    // Failed with "Replica identity must not contain unpublished generated columns" under a publication without it.
    await db.sql.query(`update g set a = 2 where id = 1`);
    await db.sql.query(`insert into g (id, a) values (2, 5); insert into w (id, a) values (2, 5)`);
    const events = await eventually(async () => {
      const all = await readJsonl(path.join(dir, 'events'));
      return all.filter((e) => e.value.op === 'c').length === 2 && all.some((e) => e.value.op === 'u')
        ? all
        : undefined;
    }, 'the update and the inserts');
    proc.kill('SIGTERM');
    assert.equal(await proc.exited, 0, proc.stderr());
    const one = (op: string, table = 'g'): DeliveredEvent => {
      const found = events.find((e) => e.value.op === op && e.value.source.table === table);
      assert.ok(found, `an ${op} event`);
      return found;
    };
    assert.deepEqual(one('r').value.after, { id: 1, a: 1, total: 10 });
    assert.deepEqual(one('u').value.before, { id: 1, a: 1, total: 10 });
    assert.deepEqual(one('u').value.after, { id: 1, a: 2, total: 20 });
    assert.deepEqual(one('c').value.after, { id: 2, a: 5, total: 50 });
    // Virtual generated columns are never published: absent from stream and snapshot alike.
    assert.deepEqual(one('r', 'w').value.after, { id: 1, a: 1 });
    assert.deepEqual(one('c', 'w').value.after, { id: 2, a: 5 });
    const report = await check(db, 'gen_pub', 'public.g,public.w');
    assert.deepEqual(report.errors, []);
    assert.ok(
      report.warnings.some((w) => w.code === 'generated-virtual' && w.message.includes('public.w (plus)')),
      JSON.stringify(report.warnings),
    );
    assert.ok(
      !report.warnings.some((w) => w.code === 'generated-columns'),
      'the publication publishes the stored column',
    );
  },
);

test(
  'PostgreSQL 18: no publication is created that would make UPDATE fail (REPLICA IDENTITY FULL with a ' +
    'virtual generated column)',
  async (t) => {
    const db = await freshDatabase();
    if (db.server.major < 18) return t.skip('virtual generated columns exist from PostgreSQL 18');
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-genv-'));
    await db.sql.query(`create table v (id int primary key, a int, doubled int generated always as (a * 2) virtual);
    alter table v replica identity full; insert into v (id, a) values (1, 1)`);
    const report = await check(db, 'genv_pub', 'public.v');
    const found = report.errors.find((e) => e.code === 'generated-virtual-identity');
    assert.ok(
      found?.message.includes('public.v') === true && found.message.includes('doubled'),
      JSON.stringify(report),
    );
    const run = await runPgcdc(runArgs(db, dir, 'genv_pub', 'public.v'));
    assert.notEqual(run.code, 0, 'pgcdc run refuses');
    assert.match(run.stderr, /public\.v/);
    const pubs = await db.sql.query(`select 1 from pg_publication where pubname = 'genv_pub'`);
    assert.equal(pubs.rowCount, 0, 'no publication was created');
    await db.sql.query(`update v set a = 3 where id = 1`);
  },
);

test(
  'snapshot and stream carry the same columns when the stream cannot carry generated ones, and check names ' +
    'the table',
  async (t) => {
    const db = await freshDatabase();
    if (db.server.major < 12) return t.skip('generated columns exist from PostgreSQL 12');
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-gen-'));
    // On 12-17 pgoutput never sends generated columns; on 18 a publication without
    // publish_generated_columns = stored does not either.
    await db.sql.query(`create table g (id int primary key, a int, total int generated always as (a * 10) stored);
    insert into g (id, a) values (1, 1); create publication own_pub for table g`);
    const report = await check(db, 'own_pub', 'public.g');
    const warning = report.warnings.find((w) => w.code === 'generated-columns');
    assert.ok(warning?.message.includes('public.g (total)') === true, JSON.stringify(report.warnings));
    if (db.server.major >= 18)
      assert.match(warning.fix, /ALTER PUBLICATION "?own_pub"? SET \(publish_generated_columns = stored\)/);
    const proc = startPgcdc(runArgs(db, dir, 'own_pub', 'public.g'));
    await streaming(db, proc);
    await db.sql.query(`insert into g (id, a) values (2, 2)`);
    const events = await eventually(async () => {
      const all = await readJsonl(path.join(dir, 'events'));
      return all.some((e) => e.value.op === 'c') ? all : undefined;
    }, 'the insert');
    proc.kill('SIGTERM');
    assert.equal(await proc.exited, 0, proc.stderr());
    const read = events.find((e) => e.value.op === 'r');
    const insert = events.find((e) => e.value.op === 'c');
    assert.deepEqual(read?.value.after, { id: 1, a: 1 });
    assert.deepEqual(insert?.value.after, { id: 2, a: 2 });
  },
);

test('PostgreSQL 18: setup --apply publishes stored generated columns, also on an existing publication', async (t) => {
  const db = await freshDatabase();
  if (db.server.major < 18) return t.skip('publish_generated_columns exists from PostgreSQL 18');
  await db.sql.query(
    `create table g (id int primary key, a int, total int generated always as (a * 10) stored);
    alter table g replica identity full; insert into g (id, a) values (1, 1); create publication setup_pub for ` +
      `table g`,
  );
  // "Replica identity must not contain unpublished generated columns."
  await assert.rejects(db.sql.query(`update g set a = 2`), /cannot update table "g"/);
  const admin = new URL(db.url);
  const env = { PGCDC_ADMIN_PASSWORD: decodeURIComponent(admin.password), PGCDC_USER_PASSWORD: 'gen-user-pw' };
  admin.password = '';
  const setup = await runPgcdc(
    [
      'setup',
      '--platform',
      'generic',
      '--user',
      `u_${db.name}`,
      '--tables',
      'public.g',
      '--publication',
      'setup_pub',
      '--slot',
      `s_${db.name}`,
      '--apply',
      '--admin-url',
      admin.toString(),
    ],
    env,
  );
  assert.equal(setup.code, 0, setup.stderr + setup.stdout);
  const pub = await db.sql.query<{ gencols: string }>(
    `select pubgencols::text as gencols from pg_publication where pubname = 'setup_pub'`,
  );
  assert.equal(pub.rows[0]?.gencols, 's');
  await db.sql.query(`update g set a = 2`);
});
