import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger } from '../../../src/core/log.ts';
import { CapturedRelations } from '../../../src/selection/captured-relations.ts';
import { parseTablePattern, selectionMatcher } from '../../../src/selection/patterns.ts';
import type { TableSelection } from '../../../src/selection/table-selection.ts';
import type { RelationMessage } from '../../../src/source/relations.ts';

const relation = (relationId: number, namespace: string, name: string): RelationMessage => ({
  tag: 'relation',
  xid: undefined,
  relationId,
  namespace,
  name,
  replicaIdentity: 'd',
  columns: [],
});

test(
  'the stream side of the selection: selected by oid or patterns, partitions by root, signal kept, ' +
    'heartbeat and others dropped once logged',
  () => {
    const logs: string[] = [];
    const log = createLogger(
      { level: 'info', format: 'json' },
      new Writable({ write: (chunk: Buffer, _e, cb) => (logs.push(chunk.toString()), cb()) }),
    );
    const selection: TableSelection = {
      tables: [{ oid: 10, schema: 'public', table: 'orders', kind: 'r', replicaIdentity: 'd', primaryKey: ['id'] }],
      fromPublication: false,
      unmatched: [],
      captures: selectionMatcher(['public.orders', 'sales.*'].map(parseTablePattern), []),
    };
    const captured = new CapturedRelations(
      selection,
      { signal: { schema: 'pgcdc', table: 'signal' }, heartbeat: { schema: 'pgcdc', table: 'hb' } },
      log,
    );
    captured.relation(relation(10, 'public', 'orders_renamed'), undefined);
    captured.relation(relation(11, 'sales', 'm_2025'), { schema: 'sales', table: 'm' });
    captured.relation(relation(12, 'pgcdc', 'signal'), undefined);
    captured.relation(relation(13, 'pgcdc', 'hb'), undefined);
    captured.relation(relation(14, 'public', 'other'), undefined);
    captured.relation(relation(14, 'public', 'other'), undefined);
    assert.deepEqual(
      [10, 11, 12, 13, 14].map((id) => captured.drops(id)),
      [false, false, false, true, true],
    );
    assert.equal(
      logs.filter((l) => l.includes('outside the selection')).length,
      1,
      'one line for public.other, none for the heartbeat table',
    );
    assert.match(logs.join(''), /"table":"public.other"/);
    captured.relation(relation(14, 'sales', 'other'), undefined);
    assert.equal(captured.drops(14), false, 'renamed into the selection');
  },
);
