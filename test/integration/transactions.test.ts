/**
 * Transaction metadata and the event filters, end to end: every data event carries commit_lsn and
 * transaction {id, total_order, data_collection_order}; transactions.events adds BEGIN/END events
 * (Debezium's shape) whose ids stay the same after a crash; truncate.skip drops op t;
 * messages.include/exclude select message prefixes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freshDatabase, eventually } from '../harness/pg.ts';
import { readJsonl, startPgcdc, type DeliveredEvent } from '../harness/cli.ts';

interface TxValue {
  status: 'BEGIN' | 'END';
  id: string;
  ts_ms: number;
  event_count: number | null;
  data_collections: { data_collection: string; event_count: number }[] | null;
}

test('BEGIN/END events, commit metadata on every event, truncate.skip, message prefixes', async () => {
  const db = await freshDatabase();
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-tx-'));
  await db.sql.query(`create table a (id int primary key); create table b (id int primary key)`);
  await writeFile(
    path.join(dir, 'pgcdc.yaml'),
    JSON.stringify({
      transactions: { events: true },
      truncate: { skip: true },
      messages: { include: ['audit*'], exclude: ['audit.debug'] },
    }),
  );
  const args = [
    'run',
    '--config',
    path.join(dir, 'pgcdc.yaml'),
    '--source',
    db.url,
    '--slot',
    `s_${db.name}`,
    '--publication',
    'tx_pub',
    '--tables',
    'public.a,public.b',
    '--out',
    path.join(dir, 'events'),
    '--offsets',
    path.join(dir, 'offsets.json'),
    '--log-format',
    'json',
    '--snapshot-mode',
    'never',
  ];
  let proc = startPgcdc(args);
  await eventually(
    async () =>
      (await db.sql.query(`select 1 from pg_replication_slots where slot_name = $1 and active`, [`s_${db.name}`]))
        .rowCount === 1
        ? true
        : undefined,
    'slot',
  );
  await db.sql.query(
    `begin; insert into a values (1), (2); insert into b values (1); update a set id = 3 where id = 2; commit`,
  );
  const messages = db.server.major >= 14;
  if (messages) {
    await db.sql.query(
      `begin; insert into b values (2);
      select pg_logical_emit_message(true, 'audit.login', 'x'); select pg_logical_emit_message(true, ` +
        `'audit.debug', 'y');
      select pg_logical_emit_message(true, 'other', 'z'); commit`,
    );
  } else await db.sql.query(`insert into b values (2)`);
  await db.sql.query(`truncate a`);
  await db.sql.query(`insert into a values (10)`);
  const all = await eventually(async () => {
    const found = await readJsonl(path.join(dir, 'events'));
    return found.some((e) => e.key?.id === 10) ? found : undefined;
  }, 'the last insert');
  // Crash and restart: the redelivered part of the files is truncated away; ids never change.
  proc.kill('SIGKILL');
  await proc.exited;
  proc = startPgcdc(args);
  await db.sql.query(`insert into b values (11)`);
  const after = await eventually(async () => {
    const found = await readJsonl(path.join(dir, 'events'));
    return found.some((e) => e.key?.id === 11) ? found : undefined;
  }, 'the insert after the restart');
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
  assert.equal(new Set(after.map((e) => e.id)).size, after.length, 'no id twice');
  for (const event of all)
    assert.ok(
      after.some((e) => e.id === event.id),
      `${event.id} kept its id`,
    );

  const txTopic = `${db.name}.transaction`;
  const data = after.filter((e) => e.topic !== txTopic);
  const tx = after.filter((e) => e.topic === txTopic);
  assert.equal(data.filter((e) => e.value.op === 't').length, 0, 'truncate.skip');
  for (const e of data.filter((d) => d.value.op !== 'm')) {
    assert.match(e.value.source.commit_lsn, /^[0-9A-F]+\/[0-9A-F]+$/);
    assert.equal(e.id, `${e.value.source.commit_lsn}:${e.value.transaction.total_order - 1}`);
    assert.equal(e.value.transaction.id, `${e.value.source.txId}:${e.value.source.commit_lsn}`);
  }
  const m = data.filter((e) => e.value.op === 'm').map((e) => e.key?.prefix);
  assert.deepEqual(m, messages ? ['audit.login'] : []);

  // The first transaction: BEGIN, 5 events over two tables (the key change 2 -> 3 is a delete and a
  // create), END.
  const first = data.filter((e) => e.topic.endsWith('.a') || e.topic.endsWith('.b'))[0] as DeliveredEvent;
  const commitLsn = first.value.source.commit_lsn;
  const xid = `${first.value.source.txId}:${commitLsn}`;
  const ofFirst = tx.filter((e) => e.id.startsWith(`${commitLsn}:`));
  assert.deepEqual(
    ofFirst.map((e) => [e.id, e.key]),
    [
      [`${commitLsn}:begin`, { id: xid }],
      [`${commitLsn}:end`, { id: xid }],
    ],
  );
  const [begin, end] = ofFirst.map((e) => e.value as unknown as TxValue);
  assert.deepEqual(begin, {
    status: 'BEGIN',
    id: xid,
    ts_ms: first.value.source.ts_ms,
    event_count: null,
    data_collections: null,
  });
  assert.deepEqual(end, {
    status: 'END',
    id: xid,
    ts_ms: first.value.source.ts_ms,
    event_count: 5,
    data_collections: [
      { data_collection: 'public.a', event_count: 4 },
      { data_collection: 'public.b', event_count: 1 },
    ],
  });
  const ofSecond = data.filter((e) => e.key?.id === 2 && e.topic.endsWith('.b'))[0] as DeliveredEvent;
  const secondEnd = tx.find((e) => e.id === `${ofSecond.value.source.commit_lsn}:end`)?.value as unknown as TxValue;
  assert.equal(secondEnd.event_count, messages ? 2 : 1, 'messages count as events of their transaction');
  // Every transaction with events has one BEGIN and one END; the skipped truncate has none.
  const commits = new Set(data.filter((e) => e.value.transaction).map((e) => e.value.source.commit_lsn));
  assert.equal(tx.length, commits.size * 2);
});
