/**
 * Which interrupted initial snapshots of keyless tables can be continued online exactly
 * (lifecycle/snapshot-mode.ts keylessInexact), and what the continuation stores per table.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isKeyless, keylessInexact } from '../../../src/lifecycle/snapshot-mode.ts';
import { continueInitial } from '../../../src/snapshot/resume-state.ts';
import type { TableRef } from '../../../src/postgres/catalog.ts';

const table = (name: string, replicaIdentity: string, primaryKey: string[] = []): TableRef => ({
  oid: 1,
  schema: 'public',
  table: name,
  kind: 'r',
  replicaIdentity,
  primaryKey,
});

test('a table is keyless without a primary key and without a replica identity index', () => {
  assert.equal(isKeyless(table('a', 'd')), true);
  assert.equal(isKeyless(table('a', 'f')), true);
  assert.equal(isKeyless(table('a', 'i')), false);
  assert.equal(isKeyless(table('a', 'f', ['id'])), false);
});

test("keyless tables continue exactly only without REPLICA IDENTITY FULL and with the snapshot's xids stored", () => {
  assert.equal(keylessInexact([], undefined), undefined);
  assert.equal(keylessInexact([table('a', 'd')], '10:20:'), undefined);
  assert.match(
    keylessInexact([table('a', 'd')], undefined) ?? '',
    /public\.a has no key and the snapshot's transaction ids were not stored/,
  );
  assert.match(
    keylessInexact([table('a', 'd'), table('b', 'f'), table('c', 'f')], '10:20:') ?? '',
    /public\.b, public\.c have no key and REPLICA IDENTITY FULL/,
  );
  assert.match(keylessInexact([table('a', 'd')], `10:${2 ** 31 + 1}:`) ?? '', /over 2\^31 transaction ids/);
});

test('the continuation marks the keyless tables with the snapshot they are read as of', () => {
  const done = [
    {
      schema: 'public',
      table: 'a',
      cursor: { kind: 'ctid' as const, nextPage: 40, done: false },
      read: 900,
      emitted: 900,
    },
  ];
  const progress = continueInitial(
    undefined,
    '0/10',
    [
      { schema: 'public', table: 'a' },
      { schema: 'public', table: 'k' },
    ],
    done,
    { xids: '10:20:12', tables: [{ schema: 'public', table: 'a' }] },
  );
  assert.deepEqual(
    progress.tables.map((t) => [t.table, t.asOf, t.read]),
    [
      ['a', '10:20:12', 900],
      ['k', undefined, 0],
    ],
  );
});
