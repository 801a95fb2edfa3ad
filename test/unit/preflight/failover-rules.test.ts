import { test } from 'node:test';
import assert from 'node:assert/strict';
import { failoverRules, type FailoverFacts } from '../../../src/preflight/failover-rules.ts';
import type { PreflightInput } from '../../../src/preflight/rules.ts';
import type { SlotFacts } from '../../../src/preflight/facts.ts';

const slot: SlotFacts = {
  name: 'pgcdc_slot',
  plugin: 'pgoutput',
  slotType: 'logical',
  database: 'shop',
  active: false,
  activePid: null,
  confirmedFlush: 0x3000,
  restartLsn: 0x2000,
  walStatus: 'reserved',
  failover: true,
  synced: false,
  safeWalSize: undefined,
};
const ready: FailoverFacts = {
  physicalSlots: [{ name: 'standby1', active: true }],
  slotlessStandbys: 0,
  synchronizedStandbySlots: ['standby1'],
  slotSyncConnected: true,
};

// Only the fields failoverRules reads; the rest of the input is irrelevant to it.
function input(over: Partial<PreflightInput>): PreflightInput {
  return { mode: 'check', slotName: 'pgcdc_slot', slot, failover: ready, ...over } as PreflightInput;
}
const codes = (over: Partial<PreflightInput>): string[] => failoverRules(input(over)).map((p) => p.code);

test('a primary set up for failover, one without a standby, or before 17 (no facts): no warning', () => {
  assert.deepEqual(codes({}), []);
  assert.deepEqual(codes({ failover: { ...ready, physicalSlots: [{ name: 'old', active: false }] } }), []);
  assert.deepEqual(codes({ failover: undefined }), []);
});

test('with a standby: a slot that is not a failover slot, and each missing standby setting, warn with the fix', () => {
  assert.deepEqual(codes({ slot: { ...slot, failover: false } }), ['failover-slot']);
  // run alters the slot itself (slotFailover auto): only check warns, unless failover is turned off.
  assert.deepEqual(codes({ mode: 'run', slot: { ...slot, failover: false } }), []);
  assert.deepEqual(codes({ mode: 'run', slot: undefined, slotFailover: false }), ['failover-slot']);
  const sss = failoverRules(input({ failover: { ...ready, synchronizedStandbySlots: ['other'] } }));
  assert.deepEqual(
    sss.map((p) => p.code),
    ['synchronized-standby-slots'],
  );
  assert.equal(sss[0]?.fix, "ALTER SYSTEM SET synchronized_standby_slots = 'other,standby1'; SELECT pg_reload_conf();");
  assert.deepEqual(codes({ failover: { ...ready, slotlessStandbys: 1, physicalSlots: [] } }), ['standby-slot']);
  const sync = failoverRules(input({ failover: { ...ready, slotSyncConnected: false } }));
  assert.deepEqual(
    sync.map((p) => p.code),
    ['standby-slot-sync'],
  );
  assert.match(sync[0]?.fix ?? '', /sync_replication_slots = on, hot_standby_feedback = on, primary_slot_name/);
  assert.ok(sync.every((p) => p.severity === 'warning'));
});
