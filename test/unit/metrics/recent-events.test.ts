/** RecentEvents: the ring of sampled events, keys only unless values are asked for. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecentEvents } from '../../../src/metrics/recent-events.ts';
import type { BatchWritten, SampledEvent } from '../../../src/core/engine-events.ts';

let lineReads = 0;
const sampled = (n: number): SampledEvent => ({
  table: 'public.a',
  op: 'c',
  id: `0/16:${n}`,
  lsn: '0/16',
  commitAt: 1_700_000_000_000,
  key: `{"id":${n}}`,
  line: () => {
    lineReads++;
    return `{"id":"0/16:${n}","topic":"t","key":{"id":${n}},"value":{"after":{"id":${n},"card":"4111"}}}`;
  },
});

const batch = (from: number, count: number): BatchWritten => ({
  type: 'batch-written',
  events: count,
  bytes: 100,
  writeMs: 1,
  durableAt: 1_700_000_001_000,
  firstCommitAt: 1_700_000_000_000,
  lastCommitAt: 1_700_000_000_000,
  counts: [{ table: 'public.a', op: 'c', count }],
  sample: Array.from({ length: count }, (_, i) => sampled(from + i)),
});

test('keeps the last N events with their keys and never a value by default', () => {
  lineReads = 0;
  const recent = new RecentEvents({ size: 4 });
  recent.emit({ type: 'state', state: 'streaming' });
  recent.emit(batch(1, 3));
  recent.emit(batch(4, 3));
  const list = recent.list();
  assert.deepEqual(
    list.map((e) => e.key),
    [{ id: 3 }, { id: 4 }, { id: 5 }, { id: 6 }],
  );
  const first = list[0];
  assert.equal(first?.table, 'public.a');
  assert.equal(first?.op, 'c');
  assert.equal(first?.lsn, '0/16');
  assert.equal(first?.committedAt, new Date(1_700_000_000_000).toISOString());
  assert.equal(first?.writtenAt, new Date(1_700_000_001_000).toISOString());
  for (const e of list) assert.equal('value' in e, false);
  assert.doesNotMatch(JSON.stringify(list), /4111/);
  assert.equal(lineReads, 0);
});

test('values only when asked for', () => {
  const recent = new RecentEvents({ values: true });
  recent.emit(batch(1, 2));
  assert.deepEqual(recent.list()[1]?.value, { after: { id: 2, card: '4111' } });
});

test('an unreadable sample is left out, never thrown', () => {
  const recent = new RecentEvents();
  assert.doesNotThrow(() => recent.emit({ ...batch(1, 1), sample: [{ ...sampled(1), key: '{not json' }] }));
  assert.equal(recent.list().length, 0);
});
