import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatPlan, teardownSteps, type TeardownPlan } from '../../../src/cli/teardown.ts';
import { ownTableComment, parseOwnTableComment } from '../../../src/selection/own-tables.ts';

const plan: TeardownPlan = {
  slot: { name: 'my"slot', database: 'shop', plugin: 'pgoutput', confirmed: '0/16B3748', retainedBytes: 3 * 1024 ** 2 },
  slotName: 'my"slot',
  publication: true,
  publicationName: 'Pub"x',
  tables: [{ schema: 'pgcdc', table: 'pgcdc_signal', kind: 'signal', publication: 'Pub"x' }],
  kept: ['ops.pgcdc_heartbeat'],
  files: ['/tmp/o.json'],
  filesNote: undefined,
};

test('teardown steps quote every identifier and literal, in order slot, publication, tables, files', () => {
  const steps = teardownSteps(plan);
  assert.deepEqual(
    steps.map((s) => (s.kind === 'sql' ? s.sql : s.path)),
    [
      `select pg_drop_replication_slot('my"slot')`,
      'DROP PUBLICATION IF EXISTS "Pub""x"',
      'DROP TABLE IF EXISTS "pgcdc"."pgcdc_signal"',
      '/tmp/o.json',
    ],
  );
  const text = formatPlan(plan, false);
  assert.match(text, /will remove:/);
  assert.match(text, /replication slot my"slot \(pgoutput, database shop, confirmed 0\/16B3748, holding 3\.0 MiB/);
  assert.match(text, /kept: ops\.pgcdc_heartbeat \(not created by pgcdc setup/);
  assert.match(formatPlan(plan, true), /dry run: nothing is removed/);
  const empty = formatPlan({ ...plan, slot: undefined, publication: false, tables: [], files: [], kept: [] }, false);
  assert.match(empty, /nothing: no slot, publication or table of pgcdc was found/);
});

test('own-table comments name their kind and publication and read back; others do not', () => {
  for (const publication of ['pgcdc_pub', 'we"ird; the x table of publication "y"', "it's"]) {
    const comment = ownTableComment('heartbeat', publication);
    assert.match(comment, /^created by pgcdc setup/);
    assert.deepEqual(parseOwnTableComment(comment), { kind: 'heartbeat', publication });
  }
  assert.equal(parseOwnTableComment('created by me'), undefined);
  assert.equal(parseOwnTableComment('created by pgcdc setup'), undefined);
  assert.equal(parseOwnTableComment(null), undefined);
});
