import { test } from 'node:test';
import assert from 'node:assert/strict';
import { alertsSchema } from '../../../src/health/alerts-config.ts';
import { changedAlerts, evaluateAlerts, worstLevel } from '../../../src/health/evaluate.ts';
import { lagSecondsOf, WalHistory } from '../../../src/health/slot-probe.ts';
import { formatBytes, parseByteSize } from '../../../src/health/bytes.ts';
import type { SlotSample } from '../../../src/health/types.ts';

const MIB = 1024 * 1024;
const defaults = alertsSchema.parse(undefined);

function sample(over: Partial<SlotSample> = {}): SlotSample {
  return {
    at: '2026-01-01T00:00:00.000Z',
    slot: 'pgcdc_slot',
    exists: true,
    active: true,
    activePid: 42,
    walStatus: 'reserved',
    safeWalSizeBytes: 60 * MIB,
    maxSlotWalKeepSizeBytes: 64 * MIB,
    currentLsn: '0/5000000',
    confirmedFlushLsn: '0/4000000',
    restartLsn: '0/4000000',
    lagBytes: 16 * MIB,
    retainedWalBytes: 16 * MIB,
    lagSeconds: 3,
    ...over,
  };
}

const levelOf = (s: SlotSample, name: string): string | undefined =>
  evaluateAlerts(s, defaults).find((a) => a.name === name)?.level;

test('a healthy sample is ok everywhere', () => {
  const alerts = evaluateAlerts(sample(), defaults);
  assert.deepEqual(
    alerts.map((a) => [a.name, a.level]),
    [
      ['slot', 'ok'],
      ['safe_wal_size_bytes', 'ok'],
      ['retained_wal_bytes', 'ok'],
      ['lag_bytes', 'ok'],
      ['lag_seconds', 'ok'],
    ],
  );
  assert.equal(worstLevel(alerts.map((a) => a.level)), 'ok');
});

test('safe_wal_size: low is bad, by share of max_slot_wal_keep_size by default', () => {
  assert.equal(levelOf(sample({ safeWalSizeBytes: 33 * MIB }), 'safe_wal_size_bytes'), 'ok');
  assert.equal(levelOf(sample({ safeWalSizeBytes: 32 * MIB }), 'safe_wal_size_bytes'), 'warning');
  assert.equal(levelOf(sample({ safeWalSizeBytes: 12 * MIB }), 'safe_wal_size_bytes'), 'critical');
  assert.equal(levelOf(sample({ safeWalSizeBytes: -MIB }), 'safe_wal_size_bytes'), 'critical');
  // Unlimited: no share to take, nothing to judge.
  assert.equal(
    levelOf(sample({ safeWalSizeBytes: undefined, maxSlotWalKeepSizeBytes: undefined }), 'safe_wal_size_bytes'),
    'ok',
  );
  const absolute = alertsSchema.parse({ safeWalSizeBytes: { warning: '100MB', critical: '50MB' } });
  const judged = evaluateAlerts(sample({ safeWalSizeBytes: 40 * MIB }), absolute).find(
    (a) => a.name === 'safe_wal_size_bytes',
  );
  assert.equal(judged?.level, 'critical');
  assert.equal(judged?.threshold, 50 * MIB);
  assert.match(judged?.message ?? '', /only 40 MiB of max_slot_wal_keep_size 64 MiB.*start or unblock pgcdc/);
});

test('the slot alert: missing or lost is critical, unreserved a warning', () => {
  assert.equal(levelOf(sample({ exists: false, lagBytes: undefined }), 'slot'), 'critical');
  assert.equal(levelOf(sample({ walStatus: 'lost' }), 'slot'), 'critical');
  assert.equal(levelOf(sample({ walStatus: 'unreserved' }), 'slot'), 'warning');
  assert.equal(levelOf(sample({ walStatus: 'extended' }), 'slot'), 'ok');
  assert.equal(levelOf(sample({ walStatus: undefined }), 'slot'), 'ok'); // PostgreSQL before 13
});

test('high-is-bad thresholds: at the threshold is that level; unknown values are ok', () => {
  const t = alertsSchema.parse({
    lagBytes: { warning: 100, critical: 200 },
    lagSeconds: { warning: 10, critical: 20 },
  });
  const at = (s: SlotSample, name: string): string | undefined =>
    evaluateAlerts(s, t).find((a) => a.name === name)?.level;
  assert.equal(at(sample({ lagBytes: 99 }), 'lag_bytes'), 'ok');
  assert.equal(at(sample({ lagBytes: 100 }), 'lag_bytes'), 'warning');
  assert.equal(at(sample({ lagBytes: 200 }), 'lag_bytes'), 'critical');
  assert.equal(at(sample({ lagSeconds: 25 }), 'lag_seconds'), 'critical');
  assert.equal(at(sample({ lagSeconds: undefined }), 'lag_seconds'), 'ok');
  assert.equal(
    at(sample({ retainedWalBytes: 25 * 1024 * MIB }), 'retained_wal_bytes'),
    'critical', // default 20 GiB
  );
});

test('since is kept while a level holds; changedAlerts names only the alerts that changed', () => {
  const first = evaluateAlerts(sample({ safeWalSizeBytes: 30 * MIB, at: '2026-01-01T00:00:00.000Z' }), defaults);
  const second = evaluateAlerts(
    sample({ safeWalSizeBytes: 29 * MIB, at: '2026-01-01T00:00:10.000Z' }),
    defaults,
    first,
  );
  assert.equal(second.find((a) => a.name === 'safe_wal_size_bytes')?.since, '2026-01-01T00:00:00.000Z');
  assert.deepEqual(changedAlerts(first, second), []);
  assert.deepEqual(
    changedAlerts([], first).map((a) => a.name),
    ['safe_wal_size_bytes'],
  );
  const third = evaluateAlerts(sample({ safeWalSizeBytes: 5 * MIB, at: '2026-01-01T00:00:20.000Z' }), defaults, second);
  const changed = changedAlerts(second, third);
  assert.deepEqual(
    changed.map((a) => [a.name, a.level, a.since]),
    [['safe_wal_size_bytes', 'critical', '2026-01-01T00:00:20.000Z']],
  );
});

test('lagSeconds: 0 when confirmed, else since the later of the last commit and the last caught-up sample', () => {
  assert.equal(lagSecondsOf(10_000, 0, 1000, undefined), 0);
  assert.equal(lagSecondsOf(10_000, undefined, 1000, undefined), undefined);
  assert.equal(lagSecondsOf(10_000, 5, undefined, undefined), undefined);
  assert.equal(lagSecondsOf(10_000, 5, 1000, undefined), 9);
  assert.equal(lagSecondsOf(10_000, 5, 1000, 4000), 6);
  const history = new WalHistory(3);
  history.record(1000, '0/100');
  history.record(2000, '0/200');
  history.record(3000, '0/300');
  assert.equal(history.caughtUpAt('0/250'), 2000);
  assert.equal(history.caughtUpAt('0/50'), undefined);
  history.record(4000, '1/0');
  assert.equal(history.caughtUpAt('0/150'), undefined, 'the oldest entry was dropped');
  assert.equal(history.caughtUpAt('1/0'), 4000);
});

test('byte sizes: parsed with binary units, printed for people', () => {
  assert.equal(parseByteSize('512MB'), 512 * MIB);
  assert.equal(parseByteSize('1GiB'), 1024 * MIB);
  assert.equal(parseByteSize('1.5 kB'), 1536);
  assert.equal(parseByteSize('4096'), 4096);
  assert.equal(parseByteSize('12XB'), undefined);
  assert.equal(parseByteSize('-1MB'), undefined);
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(64 * MIB), '64 MiB');
  assert.equal(formatBytes(-MIB), '-1 MiB');
});
