import { test } from 'node:test';
import assert from 'node:assert/strict';
import { messageFilter } from '../../../src/pipeline/message-filter.ts';
import { heartbeatStatements } from '../../../src/pipeline/heartbeat.ts';

test('message prefixes: exact or * globs, include then exclude, pgcdc never', () => {
  const all = messageFilter([], []);
  assert.equal(all('audit'), true);
  assert.equal(all('pgcdc-heartbeat'), false);
  const some = messageFilter(['audit', 'app.*'], ['app.debug*']);
  assert.deepEqual(['audit', 'audit2', 'app.x', 'app.', 'app.debug.1', 'appx', 'pgcdc'].map(some), [
    true,
    false,
    true,
    true,
    false,
    false,
    false,
  ]);
  assert.equal(messageFilter(['a.b'], [])('aXb'), false, 'a dot is a dot');
  assert.equal(messageFilter([], ['*'])('x'), false);
});

test('heartbeat statements quote the table and use the reserved prefix', () => {
  assert.deepEqual(heartbeatStatements(undefined, false), []);
  assert.deepEqual(heartbeatStatements({ schema: 'my"s', table: 'hb' }, true), [
    `INSERT INTO "my""s"."hb" (id, ts) VALUES (1, now()) ON CONFLICT (id) DO UPDATE SET ts = excluded.ts`,
    `SELECT pg_logical_emit_message(false, 'pgcdc-heartbeat', now()::text)`,
  ]);
});
