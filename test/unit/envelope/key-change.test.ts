/**
 * A primary-key change through the assembler: a delete of the old key and a create of the new one,
 * with Debezium's headers, under REPLICA IDENTITY DEFAULT (old key tuple) and FULL (old row), with
 * toast.mode omit (the create goes through a variant serializer without the unchanged column),
 * and the cases where it is not a key change. The delete carries EventFlag.DELETE.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger } from '../../../src/core/log.ts';
import type { ChangeSink } from '../../../src/envelope/change-sink.ts';
import type { TopicNaming } from '../../../src/envelope/topics.ts';
import { ChangeAssembler } from '../../../src/pipeline/assembler.ts';
import { ToastPolicy } from '../../../src/pipeline/toast.ts';
import { UNCHANGED_TOAST, type PgoutputMessage, type TupleData } from '../../../src/protocol/messages.ts';
import { EventFlag, TopicRegistry } from '../../../src/sinks/batch.ts';
import { EventBatchBuilder } from '../../../src/sinks/batch-builder.ts';
import { RelationCache } from '../../../src/source/relations.ts';
import { DEFAULT_VALUE_OPTIONS } from '../../../src/source/values.ts';
import { checkLine, unwrapLine } from '../../harness/connect-conformance.ts';

const NAMING: TopicNaming = { prefix: 'db', database: 'db', naming: 'prefix' };

interface Written {
  line: string;
  flags: number;
}

/** A ChangeSink that keeps every event line with its flags. */
class Lines implements ChangeSink {
  readonly topics = new TopicRegistry();
  readonly writer = new EventBatchBuilder(this.topics, 1 << 16, 16);
  readonly written: Written[] = [];
  private flags: number[] = [];
  event(topic: number, line: string): void {
    this.writer.startEvent();
    this.writer.text(line);
    this.eventEnd(topic);
  }
  eventEnd(topic: number, flags = 0): void {
    this.writer.endEvent(topic);
    this.flags.push(flags);
  }
  commit(): void {
    const batch = this.writer.take(this.flags.length);
    for (let i = 0; i < this.flags.length; i++) this.written.push({ line: batch.line(i), flags: this.flags[i] ?? 0 });
    this.flags = [];
  }
}

function run(
  identity: 'd' | 'f',
  updates: { key?: TupleData; old?: TupleData; row: TupleData }[],
  options: { toast?: 'omit'; naming?: TopicNaming } = {},
): Written[] {
  const naming = options.naming ?? NAMING;
  const out = new Lines();
  const relations = new RelationCache(() => undefined, DEFAULT_VALUE_OPTIONS);
  const quiet = createLogger({ level: 'fatal', format: 'json' }, new Writable({ write: (_c, _e, done) => done() }));
  const toast = options.toast ? new ToastPolicy('omit', undefined, naming, out.topics, quiet) : undefined;
  const assembler = new ChangeAssembler(relations, out, { naming, skipBefore: 0, toast });
  const relation: Extract<PgoutputMessage, { tag: 'relation' }> = {
    tag: 'relation',
    xid: undefined,
    relationId: 1,
    namespace: 'public',
    name: 't',
    replicaIdentity: identity,
    columns: [
      { isKey: true, name: 'note', typeOid: 25, typeMod: -1 },
      // Before the key: a variant without it (toast.mode omit) shifts the key's position.
      { isKey: false, name: 'big', typeOid: 25, typeMod: -1 },
      { isKey: true, name: 'id', typeOid: 23, typeMod: -1 },
    ],
  };
  relations.apply(relation, { primaryKey: ['id'] });
  assembler.relationChanged(1);
  assembler.handle({ tag: 'begin', finalLsn: 1000, commitTime: 0, xid: 7 }, 900);
  for (const u of updates)
    assembler.handle(
      { tag: 'update', xid: undefined, relationId: 1, keyTuple: u.key, oldTuple: u.old, newTuple: u.row },
      950,
    );
  assembler.handle({ tag: 'commit', flags: 0, commitLsn: 1000, endLsn: 1010, commitTime: 0 }, 1000);
  return out.written;
}

interface Event {
  id: string;
  key: unknown;
  headers?: unknown;
  value: { op: string; before: unknown; after: unknown; transaction: { total_order: number } };
}
const parse = (w: Written): Event => JSON.parse(unwrapLine(w.line)) as Event;

test('REPLICA IDENTITY DEFAULT: the old key tuple makes a delete and a create, with headers and own ids', () => {
  const written = run('d', [{ key: [null, null, '1'], row: ['n', 'b', '2'] }]);
  const [d, c] = written.map(parse);
  assert.deepEqual(
    [d?.id, d?.key, d?.headers, d?.value.op, d?.value.before, d?.value.after],
    ['0/3E8:0', { id: 1 }, { '__debezium.newkey': { id: 2 } }, 'd', { note: null, big: null, id: 1 }, null],
  );
  assert.deepEqual(
    [c?.id, c?.key, c?.headers, c?.value.op, c?.value.before, c?.value.after],
    ['0/3E8:1', { id: 2 }, { '__debezium.oldkey': { id: 1 } }, 'c', null, { note: 'n', big: 'b', id: 2 }],
  );
  assert.deepEqual(
    written.map((w) => w.flags),
    [EventFlag.DELETE, 0],
  );
  assert.deepEqual([d?.value.transaction.total_order, c?.value.transaction.total_order], [1, 2]);
});

test('REPLICA IDENTITY FULL: the old row is the delete before; an unchanged key is an update', () => {
  const written = run('f', [
    { old: ['o', 'x', '1'], row: ['o', 'x', '5'] },
    { old: ['o', 'x', '5'], row: ['changed', 'x', '5'] },
  ]);
  const events = written.map(parse);
  assert.deepEqual(
    events.map((e) => [e.value.op, e.key]),
    [
      ['d', { id: 1 }],
      ['c', { id: 5 }],
      ['u', { id: 5 }],
    ],
  );
  assert.deepEqual(events[0]?.value.before, { note: 'o', big: 'x', id: 1 });
  assert.equal(events[2]?.headers, undefined);
});

test('toast.mode omit: the create leaves the unchanged column out; the headers still name both keys', () => {
  const written = run('d', [{ key: [null, null, '1'], row: ['n', UNCHANGED_TOAST, '2'] }], { toast: 'omit' });
  const [d, c] = written.map(parse);
  assert.deepEqual(d?.headers, { '__debezium.newkey': { id: 2 } });
  assert.deepEqual(
    [c?.key, c?.headers, c?.value.after],
    [{ id: 2 }, { '__debezium.oldkey': { id: 1 } }, { note: 'n', id: 2 }],
  );
});

test('json-with-schema: both events conform; without the old key columns it stays an update', () => {
  const naming: TopicNaming = { ...NAMING, envelope: { format: 'json-with-schema', unavailableValue: 'u' } };
  for (const w of run('d', [{ key: [null, null, '1'], row: ['n', 'b', '2'] }], { naming }))
    assert.deepEqual(checkLine(w.line), []);
  // An old tuple without the key column (an identity index on other columns) cannot tell.
  const [u] = run('d', [{ key: ['x', null, null], row: ['n', 'b', '2'] }]).map(parse);
  assert.equal(u?.value.op, 'u');
});
