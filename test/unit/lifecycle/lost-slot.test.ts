import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CdcError } from '../../../src/core/errors.ts';
import { lostSlotRecovery, recoveryWarning, requestRecovery, usableHorizon } from '../../../src/lifecycle/lost-slot.ts';
import { HorizonTracker, horizonSampleSql } from '../../../src/lifecycle/xid-horizon.ts';
import { sinceHorizonSql } from '../../../src/snapshot/visibility.ts';
import { requestTables } from '../../../src/snapshot/resume-state.ts';
import { parseCheckpointText, serializeCheckpoint } from '../../../src/offsets/file.ts';
import type { Checkpoint, IncrementalSnapshotState } from '../../../src/offsets/store.ts';

const system = { systemId: '7300000000000000001', timeline: 1, xlogPos: 0x5000, database: 'shop' };
const checkpoint: Checkpoint = {
  version: 2,
  systemId: system.systemId,
  timeline: 1,
  database: 'shop',
  slot: 's',
  publication: 'p',
  lsn: '0/4000',
  sink: {},
  updatedAt: '2026-12-04T00:00:00Z',
  xidHorizon: '1234',
};

void describe('xid horizon', () => {
  void it('a sample becomes the horizon only once a checkpoint covers its LSN', () => {
    const tracker = new HorizonTracker();
    tracker.add(100n, 0x1000);
    tracker.add(150n, 0x2000);
    assert.equal(tracker.at(0x0fff), undefined);
    assert.equal(tracker.at(0x1000), '100');
    assert.equal(tracker.at(0x1fff), '100');
    assert.equal(tracker.at(0x3000), '150');
    // Monotonic: a later question never moves it back, a sample with a lower xid is ignored.
    tracker.add(120n, 0x3100);
    assert.equal(tracker.at(0x4000), '150');
  });

  void it('starts from the stored horizon and keeps it until a newer sample is covered', () => {
    const tracker = new HorizonTracker('90');
    assert.equal(tracker.at(0), '90');
    tracker.add(95n, 0x5000);
    assert.equal(tracker.at(0x4fff), '90');
    assert.equal(tracker.at(0x5000), '95');
  });

  void it('samples the oldest running xid before the WAL insert position, per major', () => {
    assert.match(horizonSampleSql(17), /^select pg_snapshot_xmin\(pg_current_snapshot\(\)\).*insert_lsn/);
    assert.match(horizonSampleSql(12), /^select txid_snapshot_xmin\(txid_current_snapshot\(\)\)/);
  });

  void it('is used within 2^30 xids of the next xid, never when ahead of it or too old', () => {
    assert.equal(usableHorizon('1000', 2000n), '1000');
    assert.equal(usableHorizon(undefined, 2000n), undefined);
    assert.equal(usableHorizon('3000', 2000n), undefined);
    assert.equal(usableHorizon('1000', 1000n + 2n ** 30n), undefined);
    assert.equal(usableHorizon('1000', 999n + 2n ** 30n), '1000');
  });

  void it('filters by age on the low 32 bits (wraparound-safe), every row when those are no normal xid', () => {
    assert.equal(sinceHorizonSql('1234'), `age(xmin) <= age('1234'::xid)`);
    assert.equal(sinceHorizonSql(String(2n ** 32n + 77n)), `age(xmin) <= age('77'::xid)`);
    assert.equal(sinceHorizonSql(String(2n ** 32n + 2n)), undefined);
  });
});

void describe('lost-slot recovery', () => {
  const missing = new CdcError('SLOT_MISSING', 'replication slot s is gone');
  const other = new CdcError('SYSTEM_CHANGED', 'the server is a different PostgreSQL cluster');

  void it('uses the stored horizon on the same cluster only', () => {
    const same = lostSlotRecovery(missing, checkpoint, system);
    assert.deepEqual(same, {
      cause: 'SLOT_MISSING',
      reason: missing.message,
      since: '0/4000',
      sameCluster: true,
      storedHorizon: '1234',
    });
    const moved = lostSlotRecovery(other, checkpoint, { ...system, systemId: '42' });
    assert.equal(moved?.sameCluster, false);
    assert.equal(moved?.storedHorizon, undefined);
    assert.equal(lostSlotRecovery(new CdcError('CONFIG_INVALID', 'x'), checkpoint, system), undefined);
    assert.equal(lostSlotRecovery(missing, undefined, system), undefined);
  });

  void it('requests every table again as a recovery, keeping a pending request behind it', () => {
    const before: IncrementalSnapshotState = {
      id: '0/10:i3',
      seq: 3,
      tables: [
        { schema: 'public', table: 'a', cursor: { kind: 'key', after: ['7'], done: false }, read: 7, emitted: 7 },
        { schema: 'public', table: 'b', cursor: { kind: 'key', after: null, done: true }, read: 1, emitted: 1 },
      ],
      requests: ['r1'],
    };
    const next = requestRecovery(before, '0/50', [{ schema: 'public', table: 'b' }], '1234');
    assert.equal(next.id, '0/50:i4');
    assert.deepEqual(next.requests, ['r1']);
    assert.deepEqual(
      next.tables.map((t) => [t.table, t.recovery, t.cursor.done, t.read]),
      [
        ['b', { horizon: '1234' }, false, 0],
        ['a', undefined, false, 0],
      ],
    );
    // A table waiting for another snapshot (rows perhaps never delivered) is re-read in full, once.
    const both = requestRecovery(
      before,
      '0/50',
      [
        { schema: 'public', table: 'a' },
        { schema: 'public', table: 'b' },
      ],
      '1234',
    );
    assert.deepEqual(
      both.tables.map((t) => [t.table, t.recovery]),
      [
        ['a', {}],
        ['b', { horizon: '1234' }],
      ],
    );
    assert.deepEqual(
      requestRecovery(undefined, '0/50', [{ schema: 'public', table: 'b' }], undefined).tables[0]?.recovery,
      {},
    );
  });

  void it('warns in one line naming the cause, what is re-read and the deletes caveat', () => {
    const recovery = lostSlotRecovery(missing, checkpoint, system);
    assert.ok(recovery);
    const line = recoveryWarning(recovery, 3, '1234');
    assert.doesNotMatch(line, /\n/);
    assert.match(line, /SLOT_MISSING: changes after 0\/4000 .* 3 table\(s\) written since transaction 1234/);
    assert.match(line, /deleted in the gap cannot be seen/);
    assert.match(recoveryWarning(recovery, 3, undefined), /every row of 3 table\(s\).*pgcdc verify/);
  });
});

void describe('stored recovery request', () => {
  // Written as a (possibly malformed) stored file would hold it: serializeCheckpoint does not validate.
  const stored = (over: Record<string, unknown>): string => {
    const fields: Record<string, unknown> = { ...checkpoint, ...over };
    return serializeCheckpoint(fields as unknown as Checkpoint);
  };
  const recoveryTable = (recovery: unknown) => ({
    incremental: {
      id: '0/50:i1',
      seq: 1,
      tables: [
        {
          schema: 'public',
          table: 'a',
          cursor: { kind: 'key', after: null, done: false },
          read: 0,
          emitted: 0,
          recovery,
        },
      ],
      requests: [],
    },
  });

  void it('reads back a recovery table and the horizon as written', () => {
    const { checkpoint: back } = parseCheckpointText(stored(recoveryTable({ horizon: '1234' })), 'x', 'h');
    assert.deepEqual(back.incremental?.tables[0]?.recovery, { horizon: '1234' });
    assert.equal(back.xidHorizon, '1234');
  });

  for (const [name, over] of [
    ['a horizon that is no number', recoveryTable({ horizon: '12a' })],
    ['a horizon below the first normal xid', recoveryTable({ horizon: '2' })],
    ['a horizon past 2^63', recoveryTable({ horizon: '9223372036854775808' })],
    ['an unknown recovery field', recoveryTable({ horizon: '5', extra: true })],
    ['a checkpoint horizon that is a number', { xidHorizon: 1234 }],
  ] as const) {
    void it(`refuses ${name} as OFFSETS_CORRUPT`, () => {
      assert.throws(
        () => parseCheckpointText(stored(over), 'the offsets file o.json', 'restore it'),
        (error: unknown) => error instanceof CdcError && error.code === 'OFFSETS_CORRUPT',
      );
    });
  }
});

void describe('a snapshot request for a table under recovery', () => {
  void it('reads it in full (from the start, without the xid filter), still as the recovery', () => {
    const recovering = requestRecovery(undefined, '0/50', [{ schema: 'public', table: 'a' }], '1234');
    const halfway: IncrementalSnapshotState = {
      ...recovering,
      tables: recovering.tables.map((t) => ({ ...t, cursor: { kind: 'key', after: ['9'], done: false }, read: 3 })),
    };
    const next = requestTables(halfway, '0/60', [{ schema: 'public', table: 'a' }]);
    assert.equal(next.id, halfway.id);
    assert.deepEqual(next.tables, [
      {
        schema: 'public',
        table: 'a',
        cursor: { kind: 'key', after: null, done: false },
        read: 3,
        emitted: 0,
        recovery: {},
      },
    ]);
    // Without a horizon (every row read already) nothing changes.
    const full = requestRecovery(undefined, '0/50', [{ schema: 'public', table: 'a' }], undefined);
    assert.equal(requestTables(full, '0/60', [{ schema: 'public', table: 'a' }]), full);
  });
});

void describe('a slot lost again during a recovery', () => {
  const a = { schema: 'public', table: 'a' };
  const b = { schema: 'public', table: 'b' };
  const halfway = (state: IncrementalSnapshotState): IncrementalSnapshotState => ({
    ...state,
    tables: state.tables.map((t) => ({ ...t, cursor: { kind: 'key', after: ['9'], done: false }, read: 9 })),
  });

  void it("keeps the unfinished recovery's older horizon (the newer one was sampled after it began)", () => {
    const first = halfway(requestRecovery(undefined, '0/50', [a], '100'));
    const again = requestRecovery(first, '0/90', [a, b], '500');
    assert.deepEqual(
      again.tables.map((t) => [t.table, t.recovery, t.read]),
      [
        ['a', { horizon: '100' }, 0],
        ['b', { horizon: '500' }, 0],
      ],
    );
  });

  void it('reads every row again when the unfinished recovery read every row', () => {
    const first = halfway(requestRecovery(undefined, '0/50', [a], undefined));
    assert.deepEqual(requestRecovery(first, '0/90', [a], '500').tables[0]?.recovery, {});
  });

  void it('uses the new horizon once the earlier recovery finished', () => {
    const first = requestRecovery(undefined, '0/50', [a], '100');
    const done = {
      ...first,
      tables: first.tables.map((t) => ({ ...t, cursor: { kind: 'key' as const, after: null, done: true } })),
    };
    assert.deepEqual(requestRecovery(done, '0/90', [a], '500').tables[0]?.recovery, { horizon: '500' });
  });
});
