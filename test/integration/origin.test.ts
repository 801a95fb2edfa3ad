/**
 * origin: none (PostgreSQL 16+): changes written in a session with a replication origin (as a
 * subscription's apply worker does) are skipped with `none` and delivered with `any`; an older
 * server is refused with one line. Runs on the newest major (the default) and the oldest that
 * supports it (16); the refusal on 15.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import {
  freshDatabase,
  eventually,
  startCluster,
  testServer,
  type TestDatabase,
  type TestServer,
} from '../harness/pg.ts';
import { readJsonl, runPgcdc, startPgcdc, type PgcdcProcess } from '../harness/cli.ts';

function serverOf(cluster: Awaited<ReturnType<typeof startCluster>>): TestServer {
  return { major: cluster.major, url: (database) => cluster.url(database), cluster };
}

async function run(db: TestDatabase, origin: 'any' | 'none'): Promise<{ proc: PgcdcProcess; out: string }> {
  const dir = await mkdtemp(path.join(tmpdir(), `pgcdc-origin-${origin}-`));
  await writeFile(path.join(dir, 'pgcdc.yaml'), JSON.stringify({ origin }));
  const slot = `s_${db.name}_${origin}`;
  const proc = startPgcdc([
    'run',
    '--config',
    path.join(dir, 'pgcdc.yaml'),
    '--source',
    db.url,
    '--slot',
    slot,
    '--publication',
    'origin_pub',
    '--tables',
    'public.t',
    '--out',
    path.join(dir, 'events'),
    '--offsets',
    path.join(dir, 'offsets.json'),
    '--log-format',
    'json',
    '--snapshot-mode',
    'never',
  ]);
  await eventually(
    async () =>
      (await db.sql.query(`select 1 from pg_replication_slots where slot_name = $1 and active`, [slot])).rowCount === 1
        ? true
        : undefined,
    `slot ${slot}`,
  );
  return { proc, out: path.join(dir, 'events') };
}

async function originCase(server: TestServer): Promise<void> {
  const db = await freshDatabase(server);
  await db.sql.query(`create table t (id int primary key); create publication origin_pub for table t`);
  const none = await run(db, 'none');
  const any = await run(db, 'any');
  // A session with a replication origin, like a subscription's apply worker.
  const applier = new pg.Client({ connectionString: db.url });
  await applier.connect();
  await applier.query(`select pg_replication_origin_create('other_node')`);
  await applier.query(`select pg_replication_origin_session_setup('other_node')`);
  await applier.query(`insert into t values (1)`);
  await applier.end();
  await db.sql.query(`insert into t values (2)`);
  const ids = async (out: string, count: number): Promise<unknown[]> =>
    eventually(async () => {
      const events = await readJsonl(out);
      return events.length >= count ? events.map((e) => e.key?.id) : undefined;
    }, `${count} events`);
  assert.deepEqual(await ids(any.out, 2), [1, 2], 'origin any: both');
  assert.deepEqual(await ids(none.out, 1), [2], 'origin none: the replicated change is skipped');
  for (const { proc } of [none, any]) {
    proc.kill('SIGTERM');
    assert.equal(await proc.exited, 0, proc.stderr());
  }
  assert.deepEqual(
    (await readJsonl(none.out)).map((e) => e.key?.id),
    [2],
  );
}

test('origin none skips changes that carry a replication origin (newest major)', async () => {
  const server = await testServer();
  if (server.major < 16) return;
  await originCase(server);
});

test('origin none on PostgreSQL 16, refused on 15', async () => {
  await originCase(serverOf(await startCluster({ major: 16 })));
  const old = await freshDatabase(serverOf(await startCluster({ major: 15 })));
  await old.sql.query(`create table t (id int primary key)`);
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-origin-15-'));
  await writeFile(path.join(dir, 'pgcdc.yaml'), JSON.stringify({ origin: 'none' }));
  const result = await runPgcdc([
    'run',
    '--config',
    path.join(dir, 'pgcdc.yaml'),
    '--source',
    old.url,
    '--slot',
    `s_${old.name}`,
    '--tables',
    'public.t',
    '--out',
    path.join(dir, 'events'),
    '--offsets',
    path.join(dir, 'offsets.json'),
  ]);
  assert.equal(result.code, 2, result.stderr);
  assert.match(
    result.stderr,
    /^pgcdc: error: origin: none needs PostgreSQL 16 or later, and .* runs PostgreSQL 15\. remove origin: none/m,
  );
  const { rowCount } = await old.sql.query(`select 1 from pg_replication_slots`);
  assert.equal(rowCount, 0, 'nothing was created');
});
