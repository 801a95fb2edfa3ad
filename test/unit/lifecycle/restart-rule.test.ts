import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planStartup, type StartupInput } from '../../../src/lifecycle/restart-rule.ts';
import { CdcError } from '../../../src/core/errors.ts';
import type { Checkpoint } from '../../../src/offsets/store.ts';
import type { SlotState } from '../../../src/postgres/catalog.ts';

const system = { systemId: '7300000000000000001', timeline: 1, xlogPos: 0x5000, database: 'shop' };
const slot: SlotState = {
  name: 's',
  plugin: 'pgoutput',
  slotType: 'logical',
  database: 'shop',
  active: false,
  activePid: null,
  confirmedFlush: 0x3000,
  restartLsn: 0x2000,
  walStatus: 'reserved',
};
const checkpoint: Checkpoint = {
  version: 2,
  systemId: system.systemId,
  timeline: 1,
  database: 'shop',
  slot: 's',
  publication: 'p',
  lsn: '0/4000',
  sink: {},
  updatedAt: '2026-11-21T00:00:00Z',
};

function input(over: Partial<StartupInput>): StartupInput {
  return {
    checkpoint,
    system,
    slot,
    slotName: 's',
    publication: 'p',
    database: 'shop',
    offsetsPath: 'o.json',
    ...over,
  };
}

function refusal(over: Partial<StartupInput>): CdcError {
  try {
    planStartup(input(over));
  } catch (error) {
    assert.ok(error instanceof CdcError);
    return error;
  }
  assert.fail('expected a refusal');
}

test('first run without a slot creates one; with a slot adopts its confirmed position', () => {
  assert.deepEqual(planStartup(input({ checkpoint: undefined, slot: undefined })), { kind: 'create-slot' });
  assert.deepEqual(planStartup(input({ checkpoint: undefined })), { kind: 'adopt-slot', startLsn: 0x3000 });
});

test(
  'resume starts at the stored offset and filters what was delivered before it; the stream replays from the ' +
    "slot's position",
  () => {
    assert.deepEqual(planStartup(input({})), {
      kind: 'resume',
      startLsn: 0x4000,
      skipBefore: 0x4000,
      replayFrom: 0x3000,
    });
    // confirmed_flush equal to the stored offset is the normal case after a clean stop.
    assert.equal(planStartup(input({ slot: { ...slot, confirmedFlush: 0x4000 } })).kind, 'resume');
  },
);

test('every way changes may have been lost is refused, never resumed silently', () => {
  assert.equal(refusal({ slot: undefined }).code, 'SLOT_MISSING');
  assert.equal(refusal({ slot: { ...slot, walStatus: 'lost' } }).code, 'SLOT_LOST');
  assert.equal(refusal({ slot: { ...slot, confirmedFlush: 0x4001 } }).code, 'SLOT_AHEAD_OF_OFFSET');
  assert.equal(refusal({ system: { ...system, systemId: '42' } }).code, 'SYSTEM_CHANGED');
  assert.equal(refusal({ system: { ...system, timeline: 2 } }).code, 'SYSTEM_CHANGED');
  assert.match(refusal({ slot: undefined }).message, /may have been lost/);
});

test("a stored offset past the server's WAL (IDENTIFY_SYSTEM xlogpos) is refused: OFFSET_AHEAD_OF_SERVER", () => {
  const ahead = refusal({ checkpoint: { ...checkpoint, lsn: 'F/FFFFFF00' } });
  assert.equal(ahead.code, 'OFFSET_AHEAD_OF_SERVER');
  assert.match(ahead.message, /F\/FFFFFF00 in o\.json is past the server's WAL \(it ends at 0\/5000\)/);
  assert.equal(refusal({ checkpoint: { ...checkpoint, lsn: '0/5001' } }).code, 'OFFSET_AHEAD_OF_SERVER');
  // Exactly at the server's position is the normal case after an idle stop.
  assert.equal(
    planStartup(input({ checkpoint: { ...checkpoint, lsn: '0/5000' }, slot: { ...slot, confirmedFlush: 0x5000 } }))
      .kind,
    'resume',
  );
});

test('a slot that is not ours to use is refused', () => {
  assert.equal(refusal({ slot: { ...slot, plugin: 'wal2json' } }).code, 'CONFIG_INVALID');
  assert.equal(refusal({ slot: { ...slot, database: 'other' } }).code, 'CONFIG_INVALID');
  const busy = refusal({ slot: { ...slot, active: true, activePid: 99 } });
  assert.equal(busy.code, 'SOURCE_NOT_READY');
  assert.equal(busy.retryable, true);
  assert.equal(refusal({ slotName: 'other', slot: { ...slot, name: 'other' } }).code, 'CONFIG_INVALID');
  assert.equal(refusal({ checkpoint: undefined, slot: { ...slot, walStatus: 'lost' } }).code, 'SLOT_LOST');
});

test('after pg_upgrade (a new system identifier): refused without --upgraded-from, and with a wrong one', () => {
  // The upgraded cluster: a new identifier, timeline 1, its WAL past the old one, the slot carried
  // over at the new cluster's start (past the stored offset).
  const upgraded = { ...system, systemId: '7400000000000000002', xlogPos: 0x9000 };
  const carried = { ...slot, confirmedFlush: 0x8000, restartLsn: 0x8000 };
  const none = refusal({ system: upgraded, slot: carried });
  assert.equal(none.code, 'SYSTEM_CHANGED');
  assert.match(none.hint ?? '', /--upgraded-from 7300000000000000001/);
  const wrong = refusal({ system: upgraded, slot: carried, upgradedFrom: '7300000000000000999' });
  assert.equal(wrong.code, 'SYSTEM_CHANGED');
  assert.match(wrong.message, /--upgraded-from 7300000000000000999 is not the cluster the offsets belong to/);
  // The right one: resume at the carried slot's position, nothing replayed from the old WAL.
  assert.deepEqual(planStartup(input({ system: upgraded, slot: carried, upgradedFrom: system.systemId })), {
    kind: 'resume',
    startLsn: 0x8000,
    skipBefore: 0x8000,
    replayFrom: 0x8000,
    upgradedFrom: system.systemId,
  });
  // An initial snapshot still running on the old cluster cannot be continued on the new one.
  const running = refusal({
    system: upgraded,
    slot: carried,
    upgradedFrom: system.systemId,
    checkpoint: { ...checkpoint, snapshot: { state: 'running', tables: [] } },
  });
  assert.match(running.message, /the initial snapshot had not finished/);
  // Already recorded (same identifier): the flag changes nothing.
  assert.equal(planStartup(input({ upgradedFrom: system.systemId })).kind, 'resume');
});

test('after pg_upgrade from 16 or older (no slot carried over): refused, pointing at a new snapshot', () => {
  const upgraded = { ...system, systemId: '7400000000000000002', xlogPos: 0x9000 };
  const gone = refusal({ system: upgraded, slot: undefined });
  assert.equal(gone.code, 'SYSTEM_CHANGED');
  assert.match(gone.hint ?? '', /pg_upgrade from PostgreSQL 16 or older/);
  assert.match(gone.hint ?? '', /docs\/upgrades\.md/);
  const flagged = refusal({ system: upgraded, slot: undefined, upgradedFrom: system.systemId });
  assert.equal(flagged.code, 'SLOT_MISSING');
  assert.match(flagged.message, /did not survive the upgrade/);
  // A slot behind the stored offset was not carried over by pg_upgrade (made by hand): refused.
  const behind = refusal({
    system: upgraded,
    slot: { ...slot, confirmedFlush: 0x1000 },
    upgradedFrom: system.systemId,
  });
  assert.equal(behind.code, 'SYSTEM_CHANGED');
});
