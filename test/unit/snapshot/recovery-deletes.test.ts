import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { RecoveryDeletes } from '../../../src/snapshot/recovery-deletes.ts';
import { keyRangeSql, type BackfillColumn, type BackfillTable } from '../../../src/snapshot/query.ts';
import { WindowTracker, type WindowOutput, type WindowOutcome } from '../../../src/snapshot/window-tracker.ts';
import { requestRecovery } from '../../../src/lifecycle/lost-slot.ts';
import type { ResumeState } from '../../../src/offsets/store.ts';
import { TopicRegistry } from '../../../src/sinks/batch.ts';
import { EventBatchBuilder } from '../../../src/sinks/batch-builder.ts';
import { TableSerializer } from '../../../src/envelope/json.ts';
import type { TableSchema } from '../../../src/source/relations.ts';
import { UNCHANGED_TOAST, type Lsn } from '../../../src/protocol/messages.ts';
import { createLogger } from '../../../src/core/log.ts';

test('RecoveryDeletes: streamed changes and source reads drop candidates; take returns the rest once', () => {
  const deletes = new RecoveryDeletes(new Map([['public.items', ['{"id":1}', '{"id":2}', '{"id":3}', '{"id":4}']]]));
  assert.equal(deletes.active, true);
  assert.equal(deletes.tracks('public.items'), true);
  assert.equal(deletes.tracks('public.other'), false);
  deletes.drop('public.items', ['{"id":2}']);
  deletes.drop('public.other', ['{"id":3}']);
  assert.equal(deletes.count('public.items'), 3);
  assert.deepEqual(deletes.take('public.items').sort(), ['{"id":1}', '{"id":3}', '{"id":4}']);
  assert.equal(deletes.tracks('public.items'), false, 'forgotten once taken');
  assert.deepEqual(deletes.take('public.items'), []);
  assert.equal(deletes.active, false);
});

test('RecoveryDeletes: a truncate leaves nothing to delete; forget stops tracking', () => {
  const deletes = new RecoveryDeletes(
    new Map([
      ['public.a', ['{"id":1}']],
      ['public.b', ['{"id":1}']],
    ]),
  );
  deletes.truncated('public.a');
  assert.deepEqual(deletes.take('public.a'), []);
  deletes.forget('public.b');
  assert.equal(deletes.tracks('public.b'), false);
});

const col = (name: string, typeName: string, collatable = false): BackfillColumn => ({
  name,
  typeOid: 0,
  typeMod: -1,
  typeSchema: 'pg_catalog',
  typeName,
  collatable,
});

test('keyRangeSql: key columns only, bounded on both sides as keysetChunkSql compares', () => {
  const orders: BackfillTable = {
    oid: 1,
    schema: 'shop',
    table: 'Orders',
    columns: [col('id', 'int4'), col('region', 'text', true), col('total', 'numeric')],
    keyIndexes: [1, 0],
  };
  assert.equal(
    keyRangeSql(orders, null, null, 100),
    'SELECT "region", "id" FROM "shop"."Orders" ORDER BY "region" COLLATE "C", "id" LIMIT 100',
  );
  assert.equal(
    keyRangeSql(orders, ['eu', '1'], ['us', '9'], 5),
    `SELECT "region", "id" FROM "shop"."Orders" WHERE ("region" COLLATE "C", "id") > ('eu'::"pg_catalog"."text" ` +
      `COLLATE "C", '1'::"pg_catalog"."int4") AND ("region" COLLATE "C", "id") <= ('us'::"pg_catalog"."text" ` +
      `COLLATE "C", '9'::"pg_catalog"."int4") ORDER BY "region" COLLATE "C", "id" LIMIT 5`,
  );
  const single: BackfillTable = { ...orders, keyIndexes: [0] };
  assert.equal(
    keyRangeSql(single, null, ['7'], 3),
    `SELECT "id" FROM "shop"."Orders" WHERE "id" <= '7'::"pg_catalog"."int4" ORDER BY "id" LIMIT 3`,
  );
  assert.throws(() => keyRangeSql({ ...orders, keyIndexes: [] }, null, null, 1), /no key/);
});

const ITEMS: TableSchema = {
  relationId: 100,
  schema: 'public',
  table: 'items',
  replicaIdentity: 'd',
  columns: ['id', 'v'].map((name) => ({
    name,
    typeOid: 25,
    typeMod: -1,
    encode: (v: string) => JSON.stringify(v),
    plainString: true,
  })),
  keyIndexes: [0],
};

class FakeOutput implements WindowOutput {
  readonly topics = new TopicRegistry();
  readonly writer = new EventBatchBuilder(this.topics);
  currentResumeState: ResumeState = {};
  committedLsn: Lsn = 10;
  lines: string[] = [];
  event(): void {
    throw new Error('not used');
  }
  eventEnd(topic: number): void {
    this.writer.endEvent(topic);
  }
  commit(endLsn: Lsn): void {
    if (endLsn > this.committedLsn) this.committedLsn = endLsn;
    const batch = this.writer.take(this.writer.count);
    for (let i = 0; i < batch.count; i++) this.lines.push(batch.line(i).toString());
  }
  setResumeState(progress: ResumeState): void {
    this.currentResumeState = progress;
  }
}

interface Line {
  id: string;
  key: { id: string };
  value: { op: string; before: unknown; after: unknown; source: { snapshot: string } };
}

test('window tracker: the last chunk of a recovered table emits deletes for the candidates left', async () => {
  const out = new FakeOutput();
  const log = createLogger({ level: 'error', format: 'json' }, new Writable({ write: (_c, _e, cb) => cb() }));
  const deletes = new RecoveryDeletes(new Map([['public.items', ['{"id":"1"}', '{"id":"5"}', '{"id":"9"}']]]));
  const tracker = new WindowTracker(out, {
    signalTable: undefined,
    log,
    requestKeepalive: () => undefined,
    onSnapshotsChanged: () => undefined,
    recoveryDeletes: deletes,
  });
  assert.equal(tracker.active, true, 'changes are reported while candidates are tracked');
  out.setResumeState({
    incremental: requestRecovery(undefined, '0/A', [{ schema: 'public', table: 'items' }], '700'),
  });
  const serializer = new TableSerializer(ITEMS, { prefix: 'db', database: 'db', naming: 'prefix' }, out.topics);
  const open = (id: string) => {
    const handle = tracker.register({
      id,
      tableIndex: 0,
      table: { schema: 'public', table: 'items' },
      schema: ITEMS,
      serializer,
      opensAt: 'now',
    });
    let value: WindowOutcome | undefined;
    void handle.closed.then((o) => (value = o));
    return { handle, outcome: (): WindowOutcome | undefined => value };
  };
  // A streamed change names 9 (outside any window): it needs no delete.
  tracker.begin(1, 20);
  tracker.change(ITEMS, null, ['9', 'x']);
  tracker.committed(30, true);
  out.commit(30);
  // The reader found 1 in the source.
  deletes.drop('public.items', ['{"id":"1"}']);
  const first = open('w1');
  first.handle.chunkRead({
    rows: [['1', 'a']],
    next: { kind: 'key', after: ['1'], done: false },
    xip: [],
    highLsn: 40,
  });
  tracker.keepalive(50);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(first.outcome()?.kind, 'emitted');
  assert.equal(
    out.lines.filter((l) => (JSON.parse(l) as Line).value.op === 'd').length,
    0,
    'no delete before the last chunk',
  );
  const last = open('w2');
  last.handle.chunkRead({ rows: [['7', 'b']], next: { kind: 'key', after: ['7'], done: true }, xip: [], highLsn: 60 });
  tracker.keepalive(70);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(last.outcome()?.kind, 'emitted');
  const lines = out.lines.map((l) => JSON.parse(l) as Line);
  const deleted = lines.filter((l) => l.value.op === 'd');
  assert.equal(deleted.length, 1);
  const line = deleted[0] as Line;
  assert.deepEqual(line.key, { id: '5' });
  assert.equal(line.value.before, null);
  assert.equal(line.value.after, null);
  assert.equal(line.value.source.snapshot, 'recovery');
  // Ids continue after the table's read rows (2 read: 0 and 1): unique.
  assert.equal(line.id, '0/A:i1:0:2');
  assert.deepEqual(
    lines.map((l) => l.id),
    ['0/A:i1:0:0', '0/A:i1:0:1', '0/A:i1:0:2'],
  );
  assert.equal(deletes.tracks('public.items'), false);
});

test('window tracker: a streamed change without a usable key stops the table deletes', () => {
  const out = new FakeOutput();
  const log = createLogger({ level: 'error', format: 'json' }, new Writable({ write: (_c, _e, cb) => cb() }));
  const deletes = new RecoveryDeletes(new Map([['public.items', ['{"id":"5"}']]]));
  const tracker = new WindowTracker(out, {
    signalTable: undefined,
    log,
    requestKeepalive: () => undefined,
    onSnapshotsChanged: () => undefined,
    recoveryDeletes: deletes,
  });
  tracker.begin(1, 20);
  tracker.change(ITEMS, null, [UNCHANGED_TOAST, 'x']);
  tracker.committed(30, true);
  assert.equal(deletes.tracks('public.items'), false);
});
