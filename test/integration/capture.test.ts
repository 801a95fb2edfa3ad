/**
 * The streaming core end to end: the real CLI against a real PostgreSQL.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freshDatabase, eventually, type TestDatabase } from '../harness/pg.ts';
import { commitOrder, compareRows, parseLines, readJsonl, replay, runPgcdc, startPgcdc } from '../harness/cli.ts';
import { resealOffsets } from '../harness/offsets.ts';

async function workdir(): Promise<string> {
  return mkdtemp(path.join(tmpdir(), 'pgcdc-it-'));
}

function runArgs(db: TestDatabase, dir: string, tables: string, extra: string[] = []): string[] {
  return [
    'run',
    '--source',
    db.url,
    '--slot',
    slotName(db),
    '--publication',
    'it_pub',
    '--tables',
    tables,
    '--out',
    path.join(dir, 'events'),
    '--offsets',
    path.join(dir, 'offsets.json'),
    '--log-format',
    'json',
    ...extra,
  ];
}

/** Slot names are global to the cluster, so each test database gets its own. */
function slotName(db: TestDatabase): string {
  return `s_${db.name}`;
}

async function slotConfirmed(db: TestDatabase): Promise<string | undefined> {
  const { rows } = await db.sql.query<{ lsn: string | null }>(
    `select confirmed_flush_lsn::text as lsn from pg_replication_slots where slot_name = $1`,
    [slotName(db)],
  );
  return rows[0]?.lsn ?? undefined;
}

async function sourceRows(
  db: TestDatabase,
  table: string,
  key: string[],
): Promise<Map<string, Record<string, unknown>>> {
  const { rows } = await db.sql.query<Record<string, unknown>>(`select * from ${table}`);
  return new Map(rows.map((r) => [JSON.stringify(Object.fromEntries(key.map((k) => [k, r[k]]))), r]));
}

test(
  'insert, update, delete and truncate arrive as c/u/d/t events; ' + 'SIGTERM stops cleanly and confirms the offset',
  async () => {
    const db = await freshDatabase();
    const dir = await workdir();
    await db.sql.query(`create table items (id int primary key, name text not null, qty int)`);
    const proc = startPgcdc(runArgs(db, dir, 'public.items'));
    await eventually(() => slotConfirmed(db), 'slot created');
    // A first checkpoint exists before any event is written, so a crash right after the first write recovers.
    const first = await eventually(async () => {
      const text = await readFile(path.join(dir, 'offsets.json'), 'utf8').catch(() => undefined);
      return text === undefined ? undefined : (JSON.parse(text) as { lsn: string; sink: unknown });
    }, 'initial checkpoint');
    assert.deepEqual(first.sink, { files: {} });
    await db.sql.query(`insert into items values (1, 'apple', 3), (2, 'pear', 5)`);
    await db.sql.query(`update items set qty = 4 where id = 1`);
    await db.sql.query(`delete from items where id = 2`);
    await db.sql.query(`truncate items`);
    const events = await eventually(async () => {
      const all = await readJsonl(path.join(dir, 'events'));
      return all.length >= 5 ? all : undefined;
    }, 'five events');
    proc.kill('SIGTERM');
    assert.equal(await proc.exited, 0, proc.stderr());

    const ordered = commitOrder(events);
    assert.deepEqual(
      ordered.map((e) => e.value.op),
      ['c', 'c', 'u', 'd', 't'],
    );
    const [c1, , u, d, t] = ordered;
    const dbName = db.name;
    assert.equal(c1?.topic, `${dbName}.public.items`);
    assert.deepEqual(c1?.key, { id: 1 });
    assert.deepEqual(c1?.value.after, { id: 1, name: 'apple', qty: 3 });
    assert.equal(c1?.value.before, null);
    assert.equal(c1?.value.source.table, 'items');
    assert.equal(c1?.value.source.db, dbName);
    assert.equal(c1?.value.source.snapshot, 'false');
    assert.match(c1?.id ?? '', /^[0-9A-F]+\/[0-9A-F]+:0$/);
    assert.equal(c1?.id.split(':')[0], c1?.value.source.commit_lsn);
    assert.equal(c1?.value.transaction.total_order, 1);
    assert.deepEqual(u?.value.after, { id: 1, name: 'apple', qty: 4 });
    assert.equal(u?.value.before, null, 'REPLICA IDENTITY DEFAULT sends no before image for updates');
    assert.deepEqual(d?.key, { id: 2 });
    assert.deepEqual(
      d?.value.before,
      { id: 2, name: null, qty: null },
      'DEFAULT identity: delete carries the key only',
    );
    assert.equal(t?.key, null);

    // The clean stop stored the offset and confirmed exactly it to PostgreSQL.
    const stored = JSON.parse(await readFile(path.join(dir, 'offsets.json'), 'utf8')) as { lsn: string };
    assert.equal(await slotConfirmed(db), stored.lsn);
    assert.match(proc.stderr(), /"msg":"stopped"/);
  },
);

test('--sink stdout, the reader stopped reading: SIGTERM still ends pgcdc within shutdown.timeoutMs', async () => {
  const db = await freshDatabase();
  const dir = await workdir();
  await db.sql.query(`create table a (id int primary key, v text)`);
  const config = path.join(dir, 'pgcdc.yaml');
  await writeFile(config, ['shutdown:', '  timeoutMs: 2000', ''].join('\n'));
  const proc = startPgcdc([...runArgs(db, dir, 'public.a', ['--config', config]), '--sink', 'stdout']);
  await eventually(() => slotConfirmed(db), 'slot created');
  // The reader stops: once the pipe and this side's buffer are full, every write of pgcdc waits.
  proc.child.stdout?.pause();
  await db.sql.query(`insert into a select g, repeat('x', 200) from generate_series(1, 20000) g`);
  const { rows } = await db.sql.query<{ lsn: string }>(`select pg_current_wal_lsn()::text as lsn`);
  // Paused, this side still buffers what arrives (up to its high-water mark) without handing it on.
  await eventually(() => ((proc.child.stdout?.readableLength ?? 0) > 0 ? true : undefined), 'the first events written');
  proc.kill('SIGTERM');
  // Before the fix, a write(2) to the full pipe blocked the event loop and SIGTERM was never handled.
  assert.equal(await proc.exited, 1, proc.stderr());
  assert.match(proc.stderr(), /did not finish within shutdown\.timeoutMs/);
  // Nothing of the stalled transaction was acknowledged.
  const confirmed = await slotConfirmed(db);
  const { rows: behind } = await db.sql.query<{ behind: boolean }>(`select $1::pg_lsn < $2::pg_lsn as behind`, [
    confirmed,
    rows[0]?.lsn,
  ]);
  assert.equal(behind[0]?.behind, true);
});

test('REPLICA IDENTITY FULL gives whole before images; multi-table transactions keep commit order', async () => {
  const db = await freshDatabase();
  const dir = await workdir();
  await db.sql.query(`create table a (id int primary key, v text); create table b (id int primary key, v text)`);
  await db.sql.query(`alter table b replica identity full`);
  await db.sql.query(`insert into a values (1, 'a1'); insert into b values (1, 'b1')`);
  const proc = startPgcdc([...runArgs(db, dir, 'public.a,public.b'), '--sink', 'stdout']);
  await eventually(() => slotConfirmed(db), 'slot created');
  await db.sql.query(
    `begin; update b set v = 'b2' where id = 1; insert into a values (2, 'a2'); update a set v = 'a1x' where ` +
      `id = 1; delete from b where id = 1; commit`,
  );
  await db.sql.query(`begin; insert into b values (5, 'b5'); insert into a values (5, 'a5'); commit`);
  const all = await eventually(() => {
    const got = parseLines(proc.stdout());
    return got.length >= 8 ? got : undefined;
  }, 'eight events on stdout');
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());

  // The rows that existed first arrive as snapshot reads, then the stream from the slot's consistent point.
  const [ra, rb] = all;
  assert.deepEqual([ra?.value.op, ra?.value.after, ra?.value.source.snapshot], ['r', { id: 1, v: 'a1' }, 'true']);
  assert.deepEqual([rb?.value.op, rb?.value.after, rb?.value.source.snapshot], ['r', { id: 1, v: 'b1' }, 'last']);
  assert.equal(ra?.value.transaction, null);
  const events = all.slice(2);
  // stdout is one stream: it must already be in commit order.
  assert.deepEqual(
    events.map((e) => `${e.value.source.table}:${e.value.op}`),
    ['b:u', 'a:c', 'a:u', 'b:d', 'b:c', 'a:c'],
  );
  assert.deepEqual(events[0]?.value.before, { id: 1, v: 'b1' }, 'FULL identity: whole old row');
  assert.deepEqual(events[3]?.value.before, { id: 1, v: 'b2' });
  assert.equal(events[2]?.value.before, null, 'DEFAULT identity: no before image');
  const first = events.slice(0, 4);
  assert.ok(
    first.every((e) => e.value.source.txId === first[0]?.value.source.txId),
    'one transaction',
  );
  assert.deepEqual(
    first.map((e) => e.value.transaction.total_order),
    [1, 2, 3, 4],
  );
  assert.deepEqual(
    first.map((e) => e.value.transaction.data_collection_order),
    [1, 1, 2, 2],
  );
  assert.deepEqual(
    first.map((e) => e.id.split(':')[1]),
    ['0', '1', '2', '3'],
  );
});

test('SIGKILL mid-stream, then the same command again: nothing lost, nothing duplicated in the JSONL', async () => {
  const db = await freshDatabase();
  const dir = await workdir();
  await db.sql.query(`create table load (id int primary key, v int not null, note text)`);
  const args = runArgs(db, dir, 'public.load', ['--batch-size', '500']);
  let proc = startPgcdc(args);
  await eventually(() => slotConfirmed(db), 'slot created');

  // A workload that keeps committing while the engine is killed and restarted.
  let stop = false;
  let next = 1;
  const workload = (async () => {
    while (!stop) {
      const base = next;
      next += 50;
      await db.sql.query(
        `begin; insert into load select g, g % 7, 'n' || g from generate_series(${base}, ${base + 49}) g;
         update load set v = v + 1 where id between ${base - 40} and ${base - 30};
         delete from load where id = ${base - 45}; commit`,
      );
    }
  })();

  for (let kill = 0; kill < 3; kill++) {
    const target = (kill + 1) * 1500;
    await eventually(
      async () => ((await readJsonl(path.join(dir, 'events'))).length > target ? true : undefined),
      `more than ${target} events`,
    );
    proc.kill('SIGKILL');
    await proc.exited;
    proc = startPgcdc(args);
  }
  stop = true;
  await workload;
  const { rows } = await db.sql.query<{ lsn: string }>(`select pg_current_wal_lsn()::text as lsn`);
  const end = rows[0]?.lsn ?? '';
  await eventually(async () => {
    const stored = JSON.parse(await readFile(path.join(dir, 'offsets.json'), 'utf8')) as { lsn: string };
    const [sh = '', sl = ''] = stored.lsn.split('/');
    const [eh = '', el = ''] = end.split('/');
    return BigInt(`0x${sh}`) * 2n ** 32n + BigInt(`0x${sl}`) >= BigInt(`0x${eh}`) * 2n ** 32n + BigInt(`0x${el}`)
      ? true
      : undefined;
  }, 'offset to reach the end of the workload');
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());

  const events = await readJsonl(path.join(dir, 'events'));
  const ids = new Set(events.map((e) => e.id));
  assert.equal(ids.size, events.length, `${events.length - ids.size} duplicated events in the JSONL`);
  const result = replay(events);
  const source = await sourceRows(db, 'load', ['id']);
  const diff = compareRows(result.tables.get(`${db.name}.public.load`), source);
  assert.deepEqual(diff, { lost: 0, extra: 0, mismatched: 0 });
  assert.ok(source.size > 4000, `workload produced ${source.size} rows`);
});

test('a second pgcdc on the same offsets file fails at once', async () => {
  const db = await freshDatabase();
  const dir = await workdir();
  await db.sql.query(`create table t (id int primary key)`);
  const first = startPgcdc(runArgs(db, dir, 'public.t'));
  await eventually(() => slotConfirmed(db), 'slot created');
  const second = await runPgcdc(runArgs(db, dir, 'public.t'));
  assert.equal(second.code, 1);
  assert.match(second.stderr, /in use by another pgcdc process/);
  first.kill('SIGTERM');
  assert.equal(await first.exited, 0);
});

test('refuses to resume when the slot is gone or the server is another cluster', async () => {
  const db = await freshDatabase();
  const dir = await workdir();
  await db.sql.query(`create table t (id int primary key)`);
  const args = runArgs(db, dir, 'public.t');
  const proc = startPgcdc(args);
  await eventually(() => slotConfirmed(db), 'slot created');
  await db.sql.query(`insert into t values (1)`);
  await eventually(
    async () => ((await readJsonl(path.join(dir, 'events'))).length === 1 ? true : undefined),
    'one event',
  );
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0);

  // Another cluster behind the same address: a different system identifier.
  const offsetsPath = path.join(dir, 'offsets.json');
  const original = await readFile(offsetsPath, 'utf8');
  await resealOffsets(offsetsPath, { systemId: '1234567890123456789' });
  const changed = await runPgcdc(args);
  assert.equal(changed.code, 1);
  assert.match(changed.stderr, /different PostgreSQL cluster.*changes may have been lost/);
  // One error line (the start-up's preflight warnings, TLS off here, are log lines before it).
  assert.equal(
    changed.stderr
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('pgcdc:')).length,
    1,
    'one error line',
  );
  await writeFile(offsetsPath, original);

  // Someone else consumed the slot past our offset (PostgreSQL 11+ can advance a slot by hand).
  if (db.server.major >= 11) {
    await db.sql.query(`insert into t values (2)`);
    await db.sql.query(`select pg_replication_slot_advance($1, pg_current_wal_lsn())`, [slotName(db)]);
    const ahead = await runPgcdc(args);
    assert.equal(ahead.code, 1);
    assert.match(ahead.stderr, /past the stored offset .*may be lost/);
  }

  await db.sql.query(`select pg_drop_replication_slot($1)`, [slotName(db)]);
  const missing = await runPgcdc(args);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /replication slot s_t_[0-9a-f]+ is gone.*may have been lost/);
  assert.equal(await slotConfirmed(db), undefined, 'the refusal must not create a new slot');
});

test('bad input gives one clear line and exit code 2', async () => {
  const db = await freshDatabase();
  const dir = await workdir();
  await db.sql.query(`create table t (id int primary key)`);

  const unknown = await runPgcdc(['run', '--no-such-flag']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown option '--no-such-flag'/);

  const malformed = await runPgcdc(
    runArgs(db, dir, 'public.t').map((a) => (a === db.url ? 'postgres://user:s3cret@[bad' : a)),
  );
  assert.equal(malformed.code, 2);
  assert.match(malformed.stderr, /source URL is malformed/);
  assert.doesNotMatch(malformed.stderr, /s3cret/);

  const closed = new URL(db.url);
  closed.port = '1';
  // A refused connection is not bad input: pgcdc retries it (docs/recovery.md); with no retry time
  // it exits 1 at once.
  const unreachable = await runPgcdc([
    ...runArgs(db, dir, 'public.t').map((a) => (a === db.url ? closed.toString() : a)),
    '--retry-give-up-after',
    '0',
  ]);
  assert.equal(unreachable.code, 1);
  assert.match(unreachable.stderr, /cannot connect to .*127\.0\.0\.1:1/);
  assert.doesNotMatch(unreachable.stderr, /postgres:\/\//, 'never the connection string');

  const noTable = await runPgcdc(runArgs(db, dir, 'public.t,public.nope'));
  assert.equal(noTable.code, 2);
  assert.match(noTable.stderr, /table not found: public\.nope/);
  for (const r of [unknown, malformed, unreachable, noTable])
    assert.equal(
      r.stderr
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('pgcdc:')).length,
      1,
      r.stderr,
    );
});

test('an unchanged TOASTed column carries the placeholder; REPLICA IDENTITY FULL sends the real value', async () => {
  const db = await freshDatabase();
  const dir = await workdir();
  await db.sql.query(
    `create table docs (id int primary key, title text, body text); alter table docs alter column body set ` +
      `storage external`,
  );
  await db.sql.query(
    `create table full_docs (id int primary key, title text, body text); alter table full_docs alter column ` +
      `body set storage external; alter table full_docs replica identity full`,
  );
  const big = 'x'.repeat(20_000);
  await db.sql.query(`insert into docs values (1, 'a', $1)`, [big]);
  await db.sql.query(`insert into full_docs values (1, 'a', $1)`, [big]);
  const proc = startPgcdc(runArgs(db, dir, 'public.docs,public.full_docs'));
  await eventually(() => slotConfirmed(db), 'slot created');
  await db.sql.query(`update docs set title = 'b' where id = 1`);
  await db.sql.query(`update full_docs set title = 'b' where id = 1`);
  const events = await eventually(async () => {
    const all = (await readJsonl(path.join(dir, 'events'))).filter((e) => e.value.op === 'u');
    return all.length >= 2 ? all : undefined;
  }, 'two updates');
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
  const reads = (await readJsonl(path.join(dir, 'events'))).filter((e) => e.value.op === 'r');
  assert.equal(reads.length, 2, 'the snapshot read both documents');
  assert.ok(
    reads.every((e) => e.value.after?.body === big),
    'snapshot reads carry the whole TOASTed value',
  );
  const plain = events.find((e) => e.value.source.table === 'docs');
  const full = events.find((e) => e.value.source.table === 'full_docs');
  assert.deepEqual(plain?.value.after, { id: 1, title: 'b', body: '__pgcdc_unavailable_value' });
  assert.ok(full?.value.after?.body === big, 'FULL identity: the unchanged value is filled from the old row');
  assert.ok(full?.value.before?.body === big, 'FULL identity: the old row carries the value');
});

test('a user who may not create the publication gets one line with the SQL to run, exit 2', async () => {
  const db = await freshDatabase();
  const dir = await workdir();
  await db.sql.query(`create table owned (id int primary key)`);
  const role = `r_${db.name}`;
  await db.sql.query(`create role ${role} login replication password 'pw-canary-7'; grant select on owned to ${role}`);
  const url = new URL(db.url);
  url.username = role;
  url.password = 'pw-canary-7';
  const result = await runPgcdc(runArgs(db, dir, 'public.owned').map((a) => (a === db.url ? url.toString() : a)));
  assert.equal(result.code, 2, result.stderr);
  assert.match(
    result.stderr,
    new RegExp(
      /publication it_pub does not exist and could not be created .* run as a table owner or superuser: /.source +
        /CREATE PUBLICATION "it_pub" FOR TABLE "public"."owned"( WITH \(publish_generated_columns = stored\))?;/.source,
    ),
  );
  assert.doesNotMatch(result.stderr, /pw-canary-7/);
  assert.equal(await slotConfirmed(db), undefined, 'nothing was created');
});

test('an idle slot follows the server: writes to tables outside the publication do not hold WAL', async () => {
  const db = await freshDatabase();
  const dir = await workdir();
  await db.sql.query(`create table captured (id int primary key); create table other (id int primary key, pad text)`);
  const proc = startPgcdc(runArgs(db, dir, 'public.captured'));
  const first = await eventually(() => slotConfirmed(db), 'slot created');
  await db.sql.query(`insert into other select g, repeat('x', 200) from generate_series(1, 20000) g`);
  const { rows } = await db.sql.query<{ lsn: string }>(`select pg_current_wal_lsn()::text as lsn`);
  const written = rows[0]?.lsn ?? '';
  // Keepalives carry the server's position; with nothing in flight pgcdc stores and confirms it.
  await eventually(async () => {
    const { rows: cmp } = await db.sql.query<{ caught: boolean }>(
      `select confirmed_flush_lsn >= $1::pg_lsn as caught from pg_replication_slots where slot_name = $2`,
      [written, slotName(db)],
    );
    return cmp[0]?.caught ? true : undefined;
  }, 'confirmed_flush_lsn to pass the uncaptured writes');
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
  const stored = JSON.parse(await readFile(path.join(dir, 'offsets.json'), 'utf8')) as { lsn: string };
  assert.notEqual(stored.lsn, first, 'the stored offset moved with the confirmation');
  assert.equal(await slotConfirmed(db), stored.lsn, 'confirmed exactly what is stored');
  assert.deepEqual(await readJsonl(path.join(dir, 'events')), [], 'no events for uncaptured tables');
});
