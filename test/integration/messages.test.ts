/**
 * Logical decoding messages (PostgreSQL 14+): op 'm' events, transactional ones inside their
 * transaction, non-transactional ones on their own, pgcdc's reserved prefix never emitted, and no
 * duplicate after a restart.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freshDatabase, eventually } from '../harness/pg.ts';
import { commitOrder, readJsonl, startPgcdc } from '../harness/cli.ts';

test('pg_logical_emit_message becomes op m events', async (t) => {
  const db = await freshDatabase();
  if (db.server.major < 14) return t.skip('pgoutput sends logical messages from PostgreSQL 14');
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-msg-'));
  await db.sql.query(`create table t (id int primary key)`);
  const args = ['run', '--source', db.url, '--slot', `s_${db.name}`, '--publication', 'msg_pub', '--tables', 'public.t',
    '--out', path.join(dir, 'events'), '--offsets', path.join(dir, 'offsets.json'), '--log-format', 'json'];
  let proc = startPgcdc(args);
  await eventually(async () => ((await db.sql.query(`select 1 from pg_replication_slots where slot_name = $1`, [`s_${db.name}`])).rowCount === 1 ? true : undefined), 'slot');
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
  const value = (e: typeof inTx): { message: { prefix: string; content: string } } => e.value as unknown as { message: { prefix: string; content: string } };
  assert.equal(inTx.topic, `${db.name}.message`);
  assert.deepEqual(inTx.key, { prefix: 'audit' });
  assert.deepEqual(value(inTx).message, { prefix: 'audit', content: Buffer.from('in tx').toString('base64') });
  const insert1 = events.find((e) => e.value.op === 'c' && e.key?.id === 1);
  assert.equal(inTx.value.source.txId, insert1?.value.source.txId, 'a transactional message belongs to its transaction');
  assert.equal(inTx.id.split(':')[0], insert1?.id.split(':')[0]);
  assert.deepEqual(value(alone).message, { prefix: 'ping', content: Buffer.from([0, 255]).toString('base64') });
  assert.equal(alone.value.transaction, null);
  assert.match(alone.id, /^[0-9A-F]+\/[0-9A-F]+:0$/);

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
