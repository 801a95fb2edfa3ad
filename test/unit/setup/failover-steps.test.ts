import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSlotSql, failoverSteps } from '../../../src/setup/failover-steps.ts';

test('setup creates a failover slot on 17+ and prints what the primary and the standbys need', () => {
  assert.equal(
    createSlotSql({ major: 17, slot: "o'slot" }),
    "SELECT pg_create_logical_replication_slot('o''slot', 'pgoutput', false, false, true);",
  );
  assert.equal(createSlotSql({ major: 16, slot: 's' }), "SELECT pg_create_logical_replication_slot('s', 'pgoutput');");
  assert.equal(
    createSlotSql({ major: undefined, slot: 's' }),
    "SELECT pg_create_logical_replication_slot('s', 'pgoutput');",
  );
  const text = failoverSteps({ major: 18, slot: 's' })
    .map((s) => s.title)
    .join('\n');
  assert.match(text, /synchronized_standby_slots/);
  assert.match(text, /sync_replication_slots = on, hot_standby_feedback = on, primary_slot_name/);
  assert.match(text, /dbname=/);
  assert.ok(failoverSteps({ major: 18, slot: 's' }).every((s) => s.manual && s.note));
  const old = failoverSteps({ major: 16, slot: 's' });
  assert.equal(old.length, 1);
  assert.match(old[0]?.title ?? '', /does not synchronise logical slots.*SLOT_MISSING/);
});
