import { test } from 'node:test';
import assert from 'node:assert/strict';
import { durableFiles, pendingRecoveryTables } from '../../../src/lifecycle/recovery-keys.ts';
import { recoveryWarning, requestRecovery } from '../../../src/lifecycle/lost-slot.ts';
import { parseConfig } from '../../../src/config.ts';

test('durableFiles: the topics and byte lengths of a JSONL position, nothing else', () => {
  assert.deepEqual([...durableFiles({ files: { 'db.public.a': 120, bad: 'x' } })], [['db.public.a', 120]]);
  assert.equal(durableFiles(undefined).size, 0);
  assert.equal(durableFiles({ other: 1 }).size, 0);
});

test('pendingRecoveryTables: recovered tables not yet read to their end', () => {
  const incremental = requestRecovery(
    undefined,
    '0/A',
    [
      { schema: 'public', table: 'a' },
      { schema: 'public', table: 'b' },
    ],
    undefined,
  );
  const done = {
    ...incremental,
    tables: incremental.tables.map((t, i) =>
      i === 1 ? { ...t, cursor: { kind: 'key' as const, after: null, done: true } } : t,
    ),
  };
  assert.deepEqual(pendingRecoveryTables({ incremental: done }), [{ schema: 'public', table: 'a' }]);
  assert.deepEqual(pendingRecoveryTables({}), []);
});

test('onLostDeletes emit: refused for another sink, envelope or shaping in one CONFIG_INVALID line', () => {
  const base = { onLost: 'resnapshot', onLostDeletes: 'emit' };
  assert.throws(
    () => parseConfig({ ...base, sink: { kind: 'stdout' } }),
    (error: Error & { code?: string }) => {
      assert.equal(error.code, 'CONFIG_INVALID');
      assert.match(error.message, /onLostDeletes emit .*the sink is stdout/);
      return true;
    },
  );
  assert.throws(() => parseConfig({ ...base, envelope: { format: 'json-with-schema' } }), /envelope\.format/);
  assert.throws(() => parseConfig({ ...base, envelope: { type: 'flat' } }), /envelope\.type/);
  assert.equal(parseConfig(base).onLostDeletes, 'emit');
  assert.equal(parseConfig({}).onLostDeletes, 'keep');
});

test('the recovery warning says what happens to the gap deletes', () => {
  const recovery = {
    cause: 'SLOT_MISSING' as const,
    reason: 'gone',
    since: '0/A',
    sameCluster: true,
    storedHorizon: '700',
  };
  assert.match(recoveryWarning(recovery, 1, '700'), /deleted in the gap cannot be seen.*pgcdc verify/);
  assert.match(recoveryWarning(recovery, 1, '700', 'emit'), /get a delete event .*onLostDeletes emit/);
});
