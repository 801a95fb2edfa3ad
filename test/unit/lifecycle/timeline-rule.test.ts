import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTimelineHistory, timelineVerdict } from '../../../src/lifecycle/timeline-rule.ts';
import { planStartup, type StartupInput } from '../../../src/lifecycle/restart-rule.ts';
import { resolveSlotFailover } from '../../../src/lifecycle/failover-slot.ts';
import { CdcError } from '../../../src/core/errors.ts';
import type { Checkpoint } from '../../../src/offsets/store.ts';
import type { SlotState } from '../../../src/postgres/catalog.ts';

// What TIMELINE_HISTORY 3 returns after two promotions (the server's own format, with its reasons).
const HISTORY_3 = '1\t0/3000158\tno recovery target specified\n\n2\t0/5000060\tno recovery target specified\n';

test('a timeline history file parses into each ancestor and its switch point; a malformed line throws', () => {
  assert.deepEqual(parseTimelineHistory(HISTORY_3), [
    { timeline: 1, switchpoint: 0x3000158 },
    { timeline: 2, switchpoint: 0x5000060 },
  ]);
  assert.deepEqual(parseTimelineHistory('# comment\n\n'), []);
  assert.throws(() => parseTimelineHistory('1\tnot-an-lsn\treason'), /malformed timeline history line/);
  assert.throws(() => parseTimelineHistory('x\t0/1\treason'), /malformed/);
});

test('the verdict: same timeline; followed up to the switch point included; diverged past it; unrelated', () => {
  const history = parseTimelineHistory(HISTORY_3);
  assert.deepEqual(timelineVerdict({ timeline: 3, offset: 0x9000000, current: 3, history }), { kind: 'same' });
  assert.deepEqual(timelineVerdict({ timeline: 2, offset: 0x5000060, current: 3, history }), {
    kind: 'followed',
    from: 2,
    to: 3,
    switchpoint: 0x5000060,
  });
  // A grandparent timeline: its own switch point applies, not the parent's.
  assert.equal(timelineVerdict({ timeline: 1, offset: 0x3000000, current: 3, history }).kind, 'followed');
  assert.deepEqual(timelineVerdict({ timeline: 1, offset: 0x3000159, current: 3, history }), {
    kind: 'diverged',
    from: 1,
    to: 3,
    switchpoint: 0x3000158,
  });
  assert.equal(timelineVerdict({ timeline: 2, offset: 0x5000061, current: 3, history }).kind, 'diverged');
  // A checkpoint from a later timeline (a restore of an older copy), one not in the history, or no history.
  assert.equal(timelineVerdict({ timeline: 4, offset: 0, current: 3, history }).kind, 'unrelated');
  assert.equal(timelineVerdict({ timeline: 5, offset: 0, current: 6, history }).kind, 'unrelated');
  assert.equal(timelineVerdict({ timeline: 2, offset: 0, current: 3, history: undefined }).kind, 'unrelated');
});

const system = { systemId: '7300000000000000001', timeline: 2, xlogPos: 0x9000000, database: 'shop' };
const slot: SlotState = {
  name: 's',
  plugin: 'pgoutput',
  slotType: 'logical',
  database: 'shop',
  active: false,
  activePid: null,
  confirmedFlush: 0x3000000,
  restartLsn: 0x2000000,
  walStatus: 'reserved',
  failover: true,
  synced: true,
};
const checkpoint: Checkpoint = {
  version: 2,
  systemId: system.systemId,
  timeline: 1,
  database: 'shop',
  slot: 's',
  publication: 'p',
  lsn: '0/3000100',
  sink: {},
  updatedAt: '2026-12-04T00:00:00Z',
};
const promoted = parseTimelineHistory('1\t0/3000158\tno recovery target specified\n');

function input(over: Partial<StartupInput>): StartupInput {
  return {
    checkpoint,
    system,
    slot,
    slotName: 's',
    publication: 'p',
    database: 'shop',
    offsetsPath: 'o.json',
    timelineHistory: promoted,
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

test('after a promotion, a synchronised slot and an offset before the switch point resume exactly', () => {
  assert.deepEqual(planStartup(input({})), {
    kind: 'resume',
    startLsn: 0x3000100,
    skipBefore: 0x3000100,
    replayFrom: 0x3000000,
  });
});

test('after a promotion, an offset past the switch point is refused: those changes are not on the new timeline', () => {
  const error = refusal({ checkpoint: { ...checkpoint, lsn: '0/3000200' } });
  assert.equal(error.code, 'SYSTEM_CHANGED');
  assert.match(
    error.message,
    /timeline 2 left timeline 1 at 0\/3000158, before the stored offset 0\/3000200.*lost from the new timeline/,
  );
  assert.match(error.oneLine(), /synchronized_standby_slots/);
  assert.doesNotMatch(error.oneLine(), /\n/);
});

test('after a promotion without a slot copy (PostgreSQL 16 and older), SLOT_MISSING says why: failover', () => {
  const error = refusal({ slot: undefined });
  assert.equal(error.code, 'SLOT_MISSING');
  assert.match(error.oneLine(), /promoted from a standby that had no copy of the slot.*17\+ failover slots/);
  // Without a timeline change the hint stays the plain one.
  const plain = refusal({ slot: undefined, system: { ...system, timeline: 1 }, timelineHistory: undefined });
  assert.equal(plain.code, 'SLOT_MISSING');
  assert.doesNotMatch(plain.oneLine(), /promoted/);
});

test('another timeline whose history was not read, or does not hold the checkpoint, is refused as before', () => {
  assert.equal(refusal({ timelineHistory: undefined }).code, 'SYSTEM_CHANGED');
  assert.match(refusal({ timelineHistory: [] }).message, /timeline changed from 1 to 2/);
});

test('slotFailover: auto is on for a 17+ primary only; true where impossible is refused', () => {
  assert.equal(resolveSlotFailover('auto', 17, false), true);
  assert.equal(resolveSlotFailover('auto', 18, true), false);
  assert.equal(resolveSlotFailover('auto', 16, false), false);
  assert.equal(resolveSlotFailover(false, 18, false), false);
  assert.equal(resolveSlotFailover(true, 17, false), true);
  assert.throws(() => resolveSlotFailover(true, 16, false), /failover slots need PostgreSQL 17\+/);
  assert.throws(() => resolveSlotFailover(true, 17, true), /source is a standby/);
});
