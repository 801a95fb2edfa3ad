/**
 * Heartbeats: while only an uncaptured table, or another database, is written, the slot's
 * confirmed_flush_lsn and restart_lsn follow the server in each mode (idle confirmation only, a
 * heartbeat table that is in the publication, logical-message heartbeats), so the WAL the slot
 * retains does not grow with the WAL written. Message heartbeats also on the oldest major (10),
 * where pgoutput does not forward messages but the walsender still reads past them.
 * A heartbeat table the user may not write stops the run with one line.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  freshDatabase,
  eventually,
  startCluster,
  testServer,
  type TestDatabase,
  type TestServer,
} from '../harness/pg.ts';
import { readJsonl, runPgcdc, startPgcdc } from '../harness/cli.ts';
import { HEARTBEAT_COLUMNS } from '../../src/selection/heartbeat-table.ts';

type Mode = 'confirm' | 'table' | 'message';

interface Figures {
  writtenBytes: number;
  lagBytes: number;
  retainedBytes: number;
}

async function lsn(db: TestDatabase): Promise<string> {
  const { rows } = await db.sql.query<{ lsn: string }>(`select pg_current_wal_lsn()::text as lsn`);
  return rows[0]?.lsn ?? '';
}

async function diff(db: TestDatabase, a: string, b: string): Promise<number> {
  const { rows } = await db.sql.query<{ d: string }>(`select pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::text as d`, [
    a,
    b,
  ]);
  return Number(rows[0]?.d);
}

/** Writes about `rounds` x 2.5 MB of WAL through `writer`, then waits for the slot to pass it. */
async function writeAndMeasure(
  slotDb: TestDatabase,
  writer: TestDatabase,
  slot: string,
  rounds: number,
): Promise<Figures> {
  await writer.sql.query(`create table if not exists other (id int, pad text)`);
  const start = await lsn(slotDb);
  for (let i = 0; i < rounds; i++)
    await writer.sql.query(`insert into other select g, md5(g::text) from generate_series(1, 20000) g`);
  const end = await lsn(slotDb);
  const slotPasses = (column: 'confirmed_flush_lsn' | 'restart_lsn') => async (): Promise<true | undefined> => {
    const { rows } = await slotDb.sql.query<{ ok: boolean }>(
      `select ${column} >= $1::pg_lsn as ok from pg_replication_slots where slot_name = $2`,
      [end, slot],
    );
    return rows[0]?.ok === true ? true : undefined;
  };
  await eventually(slotPasses('confirmed_flush_lsn'), 'confirmed_flush_lsn to pass the uncaptured writes');
  // restart_lsn moves at running-xacts records; a checkpoint logs one right away.
  await slotDb.sql.query('checkpoint');
  await eventually(slotPasses('restart_lsn'), 'restart_lsn to pass the uncaptured writes');
  const { rows } = await slotDb.sql.query<{ lag: string; retained: string }>(
    `select pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::text as lag,
            pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::text as retained
       from pg_replication_slots where slot_name = $1`,
    [slot],
  );
  return {
    writtenBytes: await diff(slotDb, end, start),
    lagBytes: Number(rows[0]?.lag),
    retainedBytes: Number(rows[0]?.retained),
  };
}

async function heartbeatRun(t: TestContext, server: TestServer, mode: Mode): Promise<void> {
  const db = await freshDatabase(server);
  const elsewhere = await freshDatabase(server);
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-hb-'));
  const slot = `s_${db.name}`;
  await db.sql.query(`create table captured (id int primary key)`);
  const tables = ['public.captured'];
  const heartbeat: Record<string, unknown> = { interval: 300 };
  if (mode === 'table') {
    // In the publication on purpose: its changes must be dropped, its commits still confirm.
    await db.sql.query(`create schema pgcdc; create table pgcdc.pgcdc_heartbeat (${HEARTBEAT_COLUMNS})`);
    tables.push('pgcdc.pgcdc_heartbeat');
    heartbeat.table = 'pgcdc.pgcdc_heartbeat';
  }
  if (mode === 'message') heartbeat.message = true;
  const config = path.join(dir, 'pgcdc.yaml');
  await writeFile(config, JSON.stringify({ heartbeat, statusIntervalMs: 300 }));
  const proc = startPgcdc([
    'run',
    '--config',
    config,
    '--source',
    db.url,
    '--slot',
    slot,
    '--publication',
    'hb_pub',
    '--tables',
    tables.join(','),
    '--out',
    path.join(dir, 'events'),
    '--offsets',
    path.join(dir, 'offsets.json'),
    '--log-format',
    'json',
  ]);
  await eventually(
    async () =>
      (await db.sql.query(`select 1 from pg_replication_slots where slot_name = $1 and active`, [slot])).rowCount === 1
        ? true
        : undefined,
    'slot active',
  );

  const sameDb = await writeAndMeasure(db, db, slot, 3);
  const otherDb = await writeAndMeasure(db, elsewhere, slot, 3);
  await db.sql.query(`insert into captured values (1)`);
  const events = await eventually(async () => {
    const all = await readJsonl(path.join(dir, 'events'));
    return all.length >= 1 ? all : undefined;
  }, 'the captured insert');
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());

  for (const [where, f] of [
    ['uncaptured table', sameDb],
    ['other database', otherDb],
  ] as const) {
    t.diagnostic(
      `PG ${server.major} heartbeat ` +
        (`${mode}, writes to ` +
          `${where}: WAL written ${f.writtenBytes} B, then lag ${f.lagBytes} B, retained ${f.retainedBytes} B`),
    );
    // Generous: the slot holds at most a small fraction of what was written, not the writes themselves.
    assert.ok(f.writtenBytes > 1_000_000, `enough WAL was written (${f.writtenBytes})`);
    assert.ok(f.retainedBytes < f.writtenBytes / 4, `retained ${f.retainedBytes} B of ${f.writtenBytes} B written`);
    assert.ok(f.lagBytes < f.writtenBytes / 4, `lag ${f.lagBytes} B of ${f.writtenBytes} B written`);
  }
  assert.deepEqual(
    events.map((e) => e.topic),
    [`${db.name}.public.captured`],
    'heartbeats never reach the sink',
  );
  if (mode === 'table') {
    const { rows } = await db.sql.query<{ n: number }>(
      `select count(*)::int as n from pgcdc.pgcdc_heartbeat where id = 1`,
    );
    assert.equal(rows[0]?.n, 1, 'the heartbeat row is upserted');
  }
}

for (const mode of ['confirm', 'table', 'message'] as const) {
  test(
    `heartbeat ${mode}: the slot follows the server while only other tables and databases are ` + `written`,
    async (t) => {
      await heartbeatRun(t, await testServer(), mode);
    },
  );
}

test(
  'heartbeat message on PostgreSQL 10 (pgoutput drops the message; ' + 'the walsender still reads past it)',
  async (t) => {
    const cluster = await startCluster({ major: 10 });
    await heartbeatRun(t, { major: cluster.major, url: (database) => cluster.url(database), cluster }, 'message');
  },
);

test('a heartbeat table the user may not write: one line, exit 1, nothing created', async () => {
  const db = await freshDatabase();
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-hb-'));
  const role = `r_${db.name}`;
  await db.sql.query(`create table captured (id int primary key); create publication hb_pub for table captured`);
  await db.sql.query(`create table hb (${HEARTBEAT_COLUMNS})`);
  await db.sql.query(`create role ${role} login replication password 'pw-hb'; grant select on captured, hb to ${role}`);
  const url = new URL(db.url);
  url.username = role;
  url.password = 'pw-hb';
  const config = path.join(dir, 'pgcdc.yaml');
  await writeFile(config, JSON.stringify({ heartbeat: { table: 'public.hb' } }));
  const result = await runPgcdc([
    'run',
    '--config',
    config,
    '--source',
    url.toString(),
    '--slot',
    `s_${db.name}`,
    '--publication',
    'hb_pub',
    '--tables',
    'public.captured',
    '--out',
    path.join(dir, 'events'),
    '--offsets',
    path.join(dir, 'offsets.json'),
    '--log-format',
    'json',
  ]);
  assert.equal(result.code, 1, result.stderr);
  assert.match(
    result.stderr,
    new RegExp(
      /^pgcdc: error: heartbeat: permission denied writing the heartbeat table /.source +
        /public\.hb .*GRANT SELECT, INSERT, UPDATE ON "public"\."hb"/.source,
      'm',
    ),
  );
  assert.equal(
    result.stderr
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('pgcdc: error')).length,
    1,
  );
  const { rowCount } = await db.sql.query(`select 1 from pg_replication_slots where slot_name = $1`, [`s_${db.name}`]);
  assert.equal(rowCount, 0, 'no slot was created');
});
