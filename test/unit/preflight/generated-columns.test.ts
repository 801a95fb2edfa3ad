/**
 * The preflight rules about what pgoutput cannot send: generated columns (by major and
 * publish_generated_columns), publications that break writes on 18+, TRUNCATE on 10.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evaluate, truncateNotDecoded, type PreflightInput } from '../../../src/preflight/rules.ts';
import type { PublicationFacts, TableFacts } from '../../../src/preflight/facts.ts';

const table = (over: Partial<TableFacts> = {}): TableFacts => ({
  oid: 1,
  schema: 'public',
  table: 'orders',
  kind: 'r',
  isPartition: false,
  replicaIdentity: 'd',
  primaryKey: ['id'],
  canSelect: true,
  canWrite: false,
  owned: false,
  leaves: [],
  ...over,
});

function input(
  major: number,
  tables: TableFacts[],
  publication: Partial<PublicationFacts> = {},
  mode: 'check' | 'run' = 'check',
): PreflightInput {
  return {
    mode,
    host: 'db.example.com',
    database: 'shop',
    sslmode: 'verify-full',
    settings: {
      versionNum: major * 10000,
      major,
      walLevel: 'logical',
      rdsLogicalReplication: undefined,
      maxReplicationSlots: 10,
      maxWalSenders: 10,
      usedSlots: 0,
      activeSenders: 0,
      walSenderTimeoutMs: 60_000,
      inRecovery: false,
      hotStandbyFeedback: false,
    },
    role: {
      name: 'pgcdc_user',
      superuser: true,
      replication: true,
      rdsReplication: undefined,
      canCreateInDatabase: true,
    },
    tls: { inUse: true, version: 'TLSv1.3' },
    tables,
    unmatched: [],
    tablesFromPublication: false,
    publicationName: 'pgcdc_pub',
    publication: {
      exists: true,
      allTables: true,
      viaRoot: true,
      publishesUpdateOrDelete: true,
      tables: new Set(),
      ...publication,
    },
    createPublication: true,
    slotName: 'pgcdc_slot',
    slot: undefined,
    signal: undefined,
  };
}
const found = (i: PreflightInput, code: string): string[] =>
  evaluate(i)
    .filter((p) => p.code === code)
    .map((p) => `${p.severity}: ${p.message}`);

test('12-17: tables with stored generated columns are named, with the columns', () => {
  const tables = [
    table({ table: 'a', storedGenerated: ['total'] }),
    table({ table: 'b' }),
    table({ table: 'c', storedGenerated: ['x', 'y'] }),
  ];
  const [problem, ...more] = found(input(15, tables), 'generated-columns');
  assert.deepEqual(more, []);
  assert.match(
    problem ?? '',
    new RegExp(
      /^warning: public\.a \(total\), public\.c \(x, y\) /.source +
        /have stored generated columns, which pgoutput on PostgreSQL 15 cannot send/.source,
    ),
  );
  assert.deepEqual(found(input(11, tables), 'generated-columns'), [], 'none before 12');
});

test(
  '18: stored generated columns are a problem only under ' + 'a publication without publish_generated_columns = stored',
  () => {
    const tables = [table({ table: 'a', storedGenerated: ['total'], replicaIdentity: 'f', primaryKey: [] })];
    assert.deepEqual(found(input(18, tables, { generatedColumns: 'stored' }), 'generated-columns'), []);
    assert.deepEqual(
      found(input(18, tables, { exists: false }), 'generated-columns'),
      [],
      'pgcdc creates its publication with the option',
    );
    const [problem] = found(input(18, tables, { generatedColumns: 'none' }), 'generated-columns');
    assert.match(
      problem ?? '',
      new RegExp(
        /does not publish generated columns: events of public\.a \(total\) leave them out, /.source +
          /and UPDATEs and DELETEs of public\.a fail on the source/.source,
      ),
    );
    const fix = evaluate(input(18, tables, { generatedColumns: 'none' })).find(
      (p) => p.code === 'generated-columns',
    )?.fix;
    assert.equal(fix, 'ALTER PUBLICATION "pgcdc_pub" SET (publish_generated_columns = stored);');
  },
);

test(
  '18: a REPLICA IDENTITY FULL table with a virtual generated column is an error before publishing, a ' +
    'warning once published',
  () => {
    const full = table({ table: 'v', replicaIdentity: 'f', virtualGenerated: ['doubled'] });
    const keyed = table({ table: 'w', virtualGenerated: ['plus'] });
    assert.match(
      found(input(18, [full, keyed], { exists: false }), 'generated-virtual-identity')[0] ?? '',
      /^error: public\.v has REPLICA IDENTITY FULL and virtual generated columns \(doubled\)/,
    );
    assert.match(
      found(input(18, [full, keyed]), 'generated-virtual-identity')[0] ?? '',
      /^warning: .*fail on the source while it is published/,
    );
    assert.deepEqual(
      found(input(18, [full, keyed], { publishesUpdateOrDelete: false }), 'generated-virtual-identity'),
      [],
      'inserts only: nothing breaks',
    );
    assert.match(
      found(input(18, [full, keyed]), 'generated-virtual')[0] ?? '',
      /^warning: public\.w \(plus\) has virtual generated columns/,
    );
  },
);

test('10: check says TRUNCATE is not decoded; run leaves it to its own start-up warning; 11+ say nothing', () => {
  assert.equal(found(input(10, [table()]), 'truncate-not-decoded').length, 1);
  assert.deepEqual(found(input(10, [table()], {}, 'run'), 'truncate-not-decoded'), []);
  assert.equal(truncateNotDecoded(10)?.severity, 'warning');
  assert.equal(truncateNotDecoded(11), undefined);
  assert.deepEqual(found(input(11, [table()]), 'truncate-not-decoded'), []);
});
