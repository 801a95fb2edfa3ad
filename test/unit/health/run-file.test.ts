import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRunState, RUN_FILE_VERSION, type RunState } from '../../../src/health/run-file.ts';

const valid: RunState = {
  version: RUN_FILE_VERSION,
  pid: 1234,
  host: 'db1',
  procStartTime: '987654',
  slot: 'pgcdc_slot',
  startedAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:01:00.000Z',
  state: 'streaming',
  lastCommitAt: '2026-01-01T00:00:59.000Z',
  eventsDelivered: 10,
  checkpointLsn: '0/16B3748',
  snapshot: [{ table: 'public.t', rows: 5, total: 10, done: false }],
  alerts: [
    {
      name: 'lag_bytes',
      level: 'ok',
      value: 10,
      threshold: null,
      message: 'fine',
      since: '2026-01-01T00:00:00.000Z',
    },
  ],
  samples: 3,
  lastSampleAt: '2026-01-01T00:01:00.000Z',
  http: null,
};

test('a valid run file reads back as it was written', () => {
  const read = parseRunState(JSON.stringify(valid));
  assert.equal(read.kind, 'ok');
  assert.deepEqual(read.kind === 'ok' ? read.state : undefined, valid);
});

test('a corrupt or edited run file is reported with what is wrong, never trusted', () => {
  const reason = (text: string): string => {
    const read = parseRunState(text);
    assert.equal(read.kind, 'invalid', text);
    return read.kind === 'invalid' ? read.reason : '';
  };
  assert.equal(reason(''), 'it is empty');
  assert.equal(reason('{"pid": 12'), 'it is not JSON');
  assert.match(reason(JSON.stringify({ ...valid, pid: -1 })), /^pid: /);
  assert.match(reason(JSON.stringify({ ...valid, version: 2 })), /^version: /);
  assert.match(reason(JSON.stringify({ ...valid, checkpointLsn: 'DROP TABLE' })), /^checkpointLsn: must be an LSN/);
  assert.match(reason(JSON.stringify({ ...valid, state: 'dancing' })), /^state: /);
  assert.match(reason(JSON.stringify({ ...valid, eventsDelivered: 1.5 })), /^eventsDelivered: /);
  assert.match(
    reason(JSON.stringify({ ...valid, snapshot: [{ table: 'x', rows: -1, total: null, done: true }] })),
    /^snapshot\.0\.rows/,
  );
  assert.match(reason('[]'), /expected object/);
});
