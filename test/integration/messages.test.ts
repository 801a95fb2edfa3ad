/**
 * Logical decoding messages (PostgreSQL 14+): op 'm' events, transactional ones inside their
 * transaction, non-transactional ones on their own, pgcdc's reserved prefix never emitted, and no
 * duplicate after a restart. Every event id is unique across all topics, also when a
 * non-transactional message is emitted inside a transaction (its LSN is then often the commit LSN
 * of that transaction). The acknowledged position of such a message is unit-tested in
 * test/unit/capture/messages.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freshDatabase, eventually } from '../harness/pg.ts';
import { commitOrder, lsnValue, readJsonl, startPgcdc, type DeliveredEvent } from '../harness/cli.ts';
import { caughtUp } from '../harness/snapshots.ts';

/** Ids delivered more than once, across every topic of `events`. */
function duplicateIds(events: readonly DeliveredEvent[]): string[] {
  const seen = new Map<string, number>();
  for (const e of events) seen.set(e.id, (seen.get(e.id) ?? 0) + 1);
  return [...seen].filter(([, n]) => n > 1).map(([id, n]) => `${id} x${n}`);
}

test('pg_logical_emit_message becomes op m events', async (t) => {
  const db = await freshDatabase();
  if (db.server.major < 14) return t.skip('pgoutput sends logical messages from PostgreSQL 14');
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-msg-'));
  await db.sql.query(`create table t (id int primary key)`);
  const args = [
    'run',
    '--source',
    db.url,
    '--slot',
    `s_${db.name}`,
    '--publication',
    'msg_pub',
    '--tables',
    'public.t',
    '--out',
    path.join(dir, 'events'),
    '--offsets',
    path.join(dir, 'offsets.json'),
    '--log-format',
    'json',
  ];
  let proc = startPgcdc(args);
  await eventually(
    async () =>
      (await db.sql.query(`select 1 from pg_replication_slots where slot_name = $1`, [`s_${db.name}`])).rowCount === 1
        ? true
        : undefined,
    'slot',
  );
  await db.sql.query(`begin; insert into t values (1); select pg_logical_emit_message(true, 'audit', 'in tx'); commit`);
  await db.sql.query(`select pg_logical_emit_message(false, 'ping', '\\x00ff'::bytea)`);
  await db.sql.query(`select pg_logical_emit_message(false, 'pgcdc-heartbeat', 'internal')`);
  await db.sql.query(`insert into t values (2)`);
  let events = await eventually(async () => {
    const all = await readJsonl(path.join(dir, 'events'));
    return all.length >= 4 ? commitOrder(all) : undefined;
  }, 'four events');
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());

  const messages = events.filter((e) => e.value.op === 'm');
  assert.equal(messages.length, 2, 'the pgcdc-prefixed message is not emitted');
  const [inTx, alone] = messages as [(typeof messages)[number], (typeof messages)[number]];
  const value = (e: typeof inTx): { message: { prefix: string; content: string } } =>
    e.value as unknown as { message: { prefix: string; content: string } };
  assert.equal(inTx.topic, `${db.name}.message`);
  assert.deepEqual(inTx.key, { prefix: 'audit' });
  assert.deepEqual(value(inTx).message, { prefix: 'audit', content: Buffer.from('in tx').toString('base64') });
  const insert1 = events.find((e) => e.value.op === 'c' && e.key?.id === 1);
  assert.equal(
    inTx.value.source.txId,
    insert1?.value.source.txId,
    'a transactional message belongs to its transaction',
  );
  assert.equal(inTx.id.split(':')[0], insert1?.id.split(':')[0]);
  assert.deepEqual(value(alone).message, { prefix: 'ping', content: Buffer.from([0, 255]).toString('base64') });
  assert.equal(alone.value.transaction, null);
  assert.match(alone.id, /^[0-9A-F]+\/[0-9A-F]+:message$/);

  // A restart delivers nothing twice.
  proc = startPgcdc(args);
  await db.sql.query(`insert into t values (3)`);
  events = await eventually(async () => {
    const all = await readJsonl(path.join(dir, 'events'));
    return all.length >= 5 ? all : undefined;
  }, 'the fifth event');
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
  assert.equal(events.length, 5);
  assert.equal(new Set(events.map((e) => e.id)).size, 5);
});

test(
  'a non-transactional message emitted inside a transaction has an id of its own: ids are unique across all ' +
    'topics',
  async (t) => {
    const db = await freshDatabase();
    if (db.server.major < 14) return t.skip('pgoutput sends logical messages from PostgreSQL 14');
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-msg-ids-'));
    const offsets = path.join(dir, 'offsets.json');
    await db.sql.query(
      `create table t (id int primary key, n int); insert into t select g, g from generate_series(1, 5) g`,
    );
    // Every kind of event at once: snapshot reads, changes, BEGIN/END, schema changes, truncates, messages.
    await writeFile(
      path.join(dir, 'pgcdc.yaml'),
      JSON.stringify({ transactions: { events: true }, schemaChanges: { events: true } }),
    );
    const proc = startPgcdc([
      'run',
      '--config',
      path.join(dir, 'pgcdc.yaml'),
      '--source',
      db.url,
      '--slot',
      `s_${db.name}`,
      '--publication',
      'ids_pub',
      '--tables',
      'public.t',
      '--out',
      path.join(dir, 'events'),
      '--offsets',
      offsets,
      '--log-format',
      'json',
    ]);
    // Streaming, not merely the slot active: the slot is active from its creation, while the initial
    // snapshot still reads, and the DDL below would then turn that snapshot into an online one
    // (by design: initial-phase.ts), so no event of kind r would be delivered.
    const started = await eventually(
      () =>
        proc.child.exitCode !== null ? 'exited' : proc.stderr().includes('"msg":"streaming"') ? 'streaming' : undefined,
      'streaming',
    );
    assert.equal(started, 'streaming', proc.stderr());
    const rounds = 40;
    for (let i = 0; i < rounds; i++) {
      // The reported scenario, verbatim: the message's LSN is usually the transaction's commit LSN.
      await db.sql.query(
        `BEGIN; INSERT INTO t VALUES (${100 + i}, ${i}); SELECT pg_logical_emit_message(false, 'p', 'x'); COMMIT;`,
      );
      if (i % 10 === 0)
        await db.sql.query(
          `begin; update t set n = n + 1 where id = ` +
            `${100 + i}; select pg_logical_emit_message(true, 'p', 'in tx'); commit`,
        );
    }
    await db.sql.query(`alter table t add column note text`);
    await db.sql.query(
      `insert into t values (1000, 0, 'after ddl'); select pg_logical_emit_message(false, 'p', 'alone')`,
    );
    await db.sql.query(`truncate t`);
    await db.sql.query(`insert into t values (2000, 0, 'last')`);
    const events = await eventually(async () => {
      if (!(await caughtUp(db.sql, offsets))) return undefined;
      const all = await readJsonl(path.join(dir, 'events'));
      return all.some((e) => e.key?.id === 2000) ? all : undefined;
    }, 'every event delivered');
    proc.kill('SIGTERM');
    assert.equal(await proc.exited, 0, proc.stderr());

    const loose = events.filter((e) => e.value.op === 'm' && e.value.transaction === null);
    assert.equal(loose.length, rounds + 1);

    // The collision's precondition did occur: messages whose LSN is a transaction's commit LSN.
    const commits = new Set(
      events
        .filter((e) => typeof e.value.source?.commit_lsn === 'string' && e.value.source.snapshot === 'false')
        .map((e) => lsnValue(e.value.source.commit_lsn)),
    );
    const atCommit = loose.filter((m) => commits.has(BigInt(m.value.source.lsn)));
    assert.ok(
      atCommit.length > 0,
      `no message sat at a commit LSN (${loose.length} messages): the scenario was not exercised`,
    );
    const kinds = new Set(events.map((e) => e.id.split(':')[1]));
    for (const kind of ['r', '0', 'begin', 'end', 'schema', 'message'])
      assert.ok(
        kinds.has(kind),
        `an id of kind ${kind} was delivered (kinds: ${[...kinds].join(' ')}; log: ${proc.stderr()})`,
      );
    assert.ok(
      events.some((e) => e.value.op === 't'),
      'a truncate event',
    );
    assert.deepEqual(duplicateIds(events), [], 'every id is unique across all output files');
    for (const m of loose) assert.match(m.id, /^[0-9A-F]+\/[0-9A-F]+:message$/);
  },
);
