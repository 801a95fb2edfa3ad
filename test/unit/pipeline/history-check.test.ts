import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HistoryCheck } from '../../../src/pipeline/history-check.ts';
import { CdcError } from '../../../src/core/errors.ts';

// The stored offset 0/9000; the last delivered transaction xid 700 committed at 0/8000, ending at 0/8040.
const stored = 0x9000;
const last = { commitLsn: '0/8000', endLsn: '0/8040', xid: 700 };

function refused(fn: () => void): CdcError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof CdcError);
    assert.equal(error.code, 'SYSTEM_CHANGED');
    return error;
  }
  assert.fail('expected a refusal');
}

test('the same history: earlier transactions replay, the last one matches, the stream passes the stored offset', () => {
  const check = new HistoryCheck(stored, last, 0x7000);
  assert.equal(check.verified, false);
  check.begin(0x7100, 690);
  check.commit(0x7140);
  assert.equal(check.verified, false);
  check.keepalive(0x9500); // proves nothing while the last commit is still to be seen
  assert.equal(check.verified, false);
  check.begin(0x8000, 700);
  check.commit(0x8040);
  assert.equal(check.verified, true);
  assert.equal(check.finished, false);
  check.begin(0x9000, 701);
  assert.equal(check.finished, true);
});

test('a different history is refused: another xid, another end, a missing commit, an undelivered transaction', () => {
  assert.match(
    refused(() => new HistoryCheck(stored, last, 0x7000).begin(0x8000, 999)).message,
    /is xid 999, and pgcdc delivered xid 700/,
  );
  const check = new HistoryCheck(stored, last, 0x7000);
  check.begin(0x8000, 700);
  assert.match(refused(() => check.commit(0x8048)).message, /ends at 0\/8048/);
  assert.match(
    refused(() => new HistoryCheck(stored, last, 0x7000).begin(0x8010, 700)).message,
    /without the last delivered transaction \(xid 700/,
  );
  assert.match(
    refused(() => new HistoryCheck(stored, last, 0x7000).begin(0x9100, 5)).message,
    /reached 0\/9100 without/,
  );
  assert.match(
    refused(() => new HistoryCheck(stored, last, 0x7000).message(0x9100)).message,
    /reached 0\/9100 without/,
  );
  // Replay starting after the last commit: it cannot be seen, but nothing may commit before the offset.
  const after = new HistoryCheck(stored, last, 0x8040);
  assert.match(
    refused(() => after.begin(0x8800, 701)).message,
    /committed at 0\/8800, before the stored offset 0\/9000, that pgcdc never delivered/,
  );
});

test('without a last commit, or with nothing to replay, only the position is checked', () => {
  const none = new HistoryCheck(stored, undefined, 0x7000);
  none.begin(0x7100, 1);
  none.commit(0x7140);
  assert.equal(none.verified, false);
  none.keepalive(0x9000);
  assert.equal(none.verified, true);
  assert.equal(new HistoryCheck(stored, last, stored).verified, true);
  const after = new HistoryCheck(stored, last, 0x8040);
  after.keepalive(0x9000);
  assert.equal(after.verified, true);
});
