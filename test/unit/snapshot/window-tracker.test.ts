/**
 * The stream side of incremental snapshots, without a server: watermarks and signals found in
 * the stream, when windows close, what they emit, and the progress they store.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WindowTracker, type WindowOutput, type WindowOutcome } from '../../../src/snapshot/window-tracker.ts';
import type { ResumeState } from '../../../src/offsets/store.ts';
import { TopicRegistry } from '../../../src/sinks/batch.ts';
import { EventBatchBuilder } from '../../../src/sinks/batch-builder.ts';
import { TableSerializer } from '../../../src/envelope/json.ts';
import type { TableSchema } from '../../../src/source/relations.ts';
import type { Lsn } from '../../../src/protocol/messages.ts';
import { requestTables } from '../../../src/snapshot/resume-state.ts';
import { RecentTransactions } from '../../../src/snapshot/recent-transactions.ts';
import { parseSignal, parseWatermarkMessage } from '../../../src/snapshot/signals.ts';
import { highWatermark, parseSnapshotXip } from '../../../src/snapshot/window-query.ts';
import { createLogger } from '../../../src/core/log.ts';
import { Writable } from 'node:stream';

const text = (v: string): string => v;
const table = (relationId: number, name: string, columns: string[], keyIndexes: number[]): TableSchema => ({
  relationId,
  schema: 'public',
  table: name,
  replicaIdentity: 'd',
  columns: columns.map((c) => ({
    name: c,
    typeOid: 25,
    typeMod: -1,
    encode: (v: string) => JSON.stringify(text(v)),
    plainString: true,
  })),
  keyIndexes,
});
const ITEMS = table(100, 'items', ['id', 'v'], [0]);
const SIGNALS = table(200, 'pgcdc_signal', ['id', 'type', 'data'], [0]);

class FakeOutput implements WindowOutput {
  readonly topics = new TopicRegistry();
  readonly writer = new EventBatchBuilder(this.topics);
  currentResumeState: ResumeState = {};
  committedLsn: Lsn = 10;
  commits: Lsn[] = [];
  lines: string[] = [];
  event(): void {
    throw new Error('not used');
  }
  eventEnd(topic: number): void {
    this.writer.endEvent(topic);
  }
  commit(endLsn: Lsn): void {
    this.commits.push(endLsn);
    if (endLsn > this.committedLsn) this.committedLsn = endLsn;
    const batch = this.writer.take(this.writer.count);
    for (let i = 0; i < batch.count; i++) this.lines.push(batch.line(i).toString());
  }
  setResumeState(progress: ResumeState): void {
    this.currentResumeState = progress;
  }
}

function setup(signalTable = false) {
  const out = new FakeOutput();
  const logs: string[] = [];
  const log = createLogger(
    { level: 'info', format: 'json' },
    new Writable({ write: (chunk: Buffer, _e, cb) => (logs.push(chunk.toString()), cb()) }),
  );
  let keepalives = 0;
  const tracker = new WindowTracker(out, {
    signalTable: signalTable ? { schema: 'public', table: 'pgcdc_signal' } : undefined,
    log,
    requestKeepalive: () => keepalives++,
    onSnapshotsChanged: () => undefined,
  });
  out.setResumeState({ incremental: requestTables(undefined, '0/A', [{ schema: 'public', table: 'items' }]) });
  const serializer = new TableSerializer(ITEMS, { prefix: 'db', database: 'db', naming: 'prefix' }, out.topics);
  const register = (id: string, opensAt: 'now' | 'low-watermark') => {
    const handle = tracker.register({
      id,
      tableIndex: 0,
      table: { schema: 'public', table: 'items' },
      schema: ITEMS,
      serializer,
      opensAt,
    });
    let value: WindowOutcome | undefined;
    void handle.closed.then((o) => (value = o));
    return {
      handle,
      outcome: {
        get value(): WindowOutcome | undefined {
          return value;
        },
      },
    };
  };
  return { out, tracker, register, logs, keepalives: () => keepalives };
}

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test(
  'read-only window: closes at the first Begin past the read position, drops changed keys, stores the ' +
    'cursor with the rows',
  async () => {
    const { out, tracker, register, keepalives } = setup();
    const { handle, outcome } = register('w1', 'now');
    tracker.begin(7, 50);
    tracker.change(ITEMS, null, ['2', 'new']);
    tracker.committed(60, true);
    out.commit(60);
    handle.chunkRead({
      rows: [
        ['1', 'a'],
        ['2', 'b'],
        ['3', 'c'],
      ],
      next: { kind: 'key', after: ['3'], done: false },
      xip: [],
      highLsn: 100,
    });
    assert.equal(keepalives(), 1, 'asks for a keepalive');
    tracker.begin(8, 90); // before the read position: still open
    tracker.change(ITEMS, ['3', 'c'], null);
    tracker.committed(95, true);
    out.commit(95);
    assert.equal(outcome.value, undefined);
    tracker.begin(9, 120); // past it: closes before this transaction
    await flush();
    assert.deepEqual(outcome.value, { kind: 'emitted', emitted: 1, dropped: 2 });
    const line = JSON.parse(out.lines.at(-1) ?? '{}') as {
      id: string;
      value: { op: string; source: { snapshot: string }; after: { id: string } };
    };
    assert.equal(line.value.op, 'r');
    assert.equal(line.value.source.snapshot, 'incremental');
    assert.equal(line.value.after.id, '1');
    assert.equal(line.id, '0/A:i1:0:0');
    const stored = out.currentResumeState.incremental?.tables[0];
    assert.deepEqual(
      { read: stored?.read, emitted: stored?.emitted, cursor: stored?.cursor },
      { read: 3, emitted: 1, cursor: { kind: 'key', after: ['3'], done: false } },
    );
  },
);

test('a keepalive between transactions closes a read-only window; inside a transaction it does not', async () => {
  const { tracker, register } = setup();
  const { handle, outcome } = register('w1', 'now');
  handle.chunkRead({ rows: [['1', 'a']], next: { kind: 'key', after: ['1'], done: false }, xip: [], highLsn: 100 });
  tracker.begin(1, 200);
  tracker.keepalive(300);
  await flush();
  // The Begin at 200 already passed 100: closed before the transaction.
  assert.equal(outcome.value?.kind, 'emitted');
  const second = register('w2', 'now');
  tracker.committed(210, true);
  second.handle.chunkRead({ rows: [], next: { kind: 'key', after: null, done: true }, xip: [], highLsn: 400 });
  tracker.keepalive(399);
  await flush();
  const kind = (): string | undefined => second.outcome.value?.kind;
  assert.equal(kind(), undefined);
  tracker.keepalive(400);
  await flush();
  assert.equal(kind(), 'emitted');
});

test(
  'signal-table watermarks: the window opens at its low row, closes at the commit of its high row; window ' +
    'rows are swallowed',
  async () => {
    const { out, tracker, register } = setup(true);
    const { handle, outcome } = register('w1', 'low-watermark');
    tracker.begin(1, 20);
    assert.equal(tracker.change(ITEMS, null, ['1', 'x']), false, 'before the low watermark: not observed');
    tracker.committed(25, true);
    tracker.begin(2, 30);
    assert.equal(tracker.change(SIGNALS, null, ['w1-open', 'snapshot-window-open', null]), true);
    tracker.committed(35, true);
    handle.chunkRead({
      rows: [
        ['1', 'x'],
        ['2', 'y'],
      ],
      next: { kind: 'key', after: ['2'], done: false },
      xip: [],
    });
    tracker.begin(3, 40);
    tracker.change(ITEMS, null, ['2', 'z']);
    tracker.committed(45, true);
    tracker.begin(4, 50);
    tracker.change(SIGNALS, null, ['w1-close', 'snapshot-window-close', null]);
    assert.equal(outcome.value, undefined, 'closes at the commit, not at the row');
    tracker.committed(55, true);
    out.commit(55);
    await flush();
    assert.deepEqual(outcome.value, { kind: 'emitted', emitted: 1, dropped: 1 });
  },
);

test(
  'a transaction streamed before the window that was ' + 'still running for the read makes the chunk be read again',
  async () => {
    const { tracker, register } = setup();
    tracker.begin(4242, 5);
    tracker.committed(6, true);
    const { handle, outcome } = register('w1', 'now');
    handle.chunkRead({
      rows: [['1', 'a']],
      next: { kind: 'key', after: ['1'], done: true },
      xip: [4242 + 2 ** 32],
      highLsn: 10,
    });
    tracker.keepalive(11);
    await flush();
    assert.equal(outcome.value?.kind, 'retry');
  },
);

test('execute-snapshot and stop-snapshot rows take effect at their commit; malformed ones are logged', () => {
  const { out, tracker, logs } = setup(true);
  out.setResumeState({});
  tracker.begin(1, 10);
  tracker.change(SIGNALS, null, ['s1', 'execute-snapshot', '{"data-collections": ["public.items", "public.other"]}']);
  tracker.change(SIGNALS, null, ['s2', 'execute-snapshot', '{broken']);
  const incremental = () => out.currentResumeState.incremental;
  assert.equal(incremental(), undefined, 'not before the commit');
  tracker.committed(20, true);
  assert.deepEqual(
    incremental()?.tables.map((t) => t.table),
    ['items', 'other'],
  );
  assert.equal(incremental()?.id, '0/14:i1');
  tracker.begin(2, 30);
  tracker.change(SIGNALS, null, ['s3', 'stop-snapshot', '{"data-collections": ["public.other"]}']);
  tracker.committed(40, true);
  assert.deepEqual(
    incremental()?.tables.map((t) => t.stopped === true),
    [false, true],
  );
  assert.ok(logs.some((l) => l.includes('ignored a signal: ')));
});

test('signals: Debezium shapes accepted; SQL conditions, blocking snapshots and junk refused', () => {
  assert.deepEqual(
    parseSignal('execute-snapshot', '{"data-collections": ["public.orders"], "type": "incremental"}', 'x'),
    {
      kind: 'execute-snapshot',
      tables: [{ schema: 'public', table: 'orders' }],
    },
  );
  assert.deepEqual(parseSignal('stop-snapshot', null, 'x'), { kind: 'stop-snapshot', tables: undefined });
  assert.equal(
    parseSignal(
      'execute-snapshot',
      '{"data-collections": ["public.o"], "additional-conditions": [{"filter": "1=1"}]}',
      'x',
    ).kind,
    'rejected',
  );
  assert.equal(
    parseSignal('execute-snapshot', '{"data-collections": ["public.o"], "type": "blocking"}', 'x').kind,
    'rejected',
  );
  assert.equal(parseSignal('execute-snapshot', '{"data-collections": []}', 'x').kind, 'rejected');
  assert.equal(parseSignal('execute-snapshot', '{"data-collections": ["a.b.c"]}', 'x').kind, 'rejected');
  assert.equal(parseSignal('drop-everything', '{}', 'x').kind, 'rejected');
  assert.deepEqual(parseSignal('snapshot-window-open', null, 'abc-1-open'), {
    kind: 'watermark',
    window: 'abc-1',
    edge: 'low',
  });
  assert.equal(parseSignal('snapshot-window-close', null, 'abc-1-open').kind, 'rejected');
  assert.deepEqual(parseWatermarkMessage(Buffer.from('abc-1:high')), {
    kind: 'watermark',
    window: 'abc-1',
    edge: 'high',
  });
  assert.equal(parseWatermarkMessage(Buffer.from('abc-1:sideways')).kind, 'rejected');
});

test('recent transactions: begun-before by position, 64-bit xids compared modulo 2^32, bounded', () => {
  const recent = new RecentTransactions();
  recent.begin(10);
  const position = recent.position;
  recent.begin(11);
  assert.equal(recent.anyBegunBefore([10 + 2 ** 32], position), true);
  assert.equal(recent.anyBegunBefore([11, 12], position), false);
  for (let i = 0; i < 70_000; i++) recent.begin(1000 + i);
  assert.equal(recent.anyBegunBefore([10], recent.position), false, 'evicted');
  assert.equal(recent.anyBegunBefore([1000 + 69_999], recent.position), true);
});

test('snapshot text and the high watermark at page starts', () => {
  assert.deepEqual(parseSnapshotXip('100:105:'), []);
  assert.deepEqual(parseSnapshotXip('100:105:101,103'), [101, 103]);
  assert.throws(() => parseSnapshotXip('garbage'));
  assert.equal(highWatermark(8192 * 3 + 24, 8192), 8192 * 3);
  assert.equal(highWatermark(8192 * 3 + 100, 8192), 8192 * 3 + 100);
  assert.equal(highWatermark(8192 * 3, 8192), 8192 * 3);
});
