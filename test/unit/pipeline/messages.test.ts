/**
 * Non-transactional logical messages in the change assembler, without a server: their id cannot
 * be a transaction's event id, and the position acknowledged for one never skips the transaction
 * that emitted it on a restart (that transaction often commits exactly at the message's LSN).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChangeAssembler } from '../../../src/pipeline/assembler.ts';
import type { ChangeSink } from '../../../src/envelope/change-sink.ts';
import { TopicRegistry } from '../../../src/sinks/batch.ts';
import { EventBatchBuilder } from '../../../src/sinks/batch-builder.ts';
import { RelationCache } from '../../../src/source/relations.ts';
import { DEFAULT_VALUE_OPTIONS } from '../../../src/source/values.ts';
import type { Lsn, PgoutputMessage } from '../../../src/protocol/messages.ts';

class Collected implements ChangeSink {
  readonly topics = new TopicRegistry();
  readonly writer = new EventBatchBuilder(this.topics);
  readonly ids: string[] = [];
  readonly commits: Lsn[] = [];
  event(topic: number, line: string): void {
    this.writer.startEvent();
    this.writer.text(line);
    this.writer.endEvent(topic);
  }
  eventEnd(topic: number): void {
    this.writer.endEvent(topic);
  }
  commit(endLsn: Lsn): void {
    this.commits.push(endLsn);
    const batch = this.writer.take(this.writer.count);
    for (let i = 0; i < batch.count; i++) this.ids.push(batch.id(i));
  }
}

const MESSAGE_LSN = 0x1927b70;

/** `BEGIN; INSERT ...; SELECT pg_logical_emit_message(false, 'p', 'x'); COMMIT;` as pgoutput sends it. */
function scenario(skipBefore: Lsn): Collected {
  const out = new Collected();
  const relations = new RelationCache(() => undefined, DEFAULT_VALUE_OPTIONS);
  const assembler = new ChangeAssembler(relations, out, {
    naming: { prefix: 'db', database: 'db', naming: 'prefix' },
    skipBefore,
  });
  const relation: Extract<PgoutputMessage, { tag: 'relation' }> = {
    tag: 'relation',
    xid: undefined,
    relationId: 16384,
    namespace: 'public',
    name: 't',
    replicaIdentity: 'd',
    columns: [{ name: 'id', typeOid: 25, typeMod: -1, isKey: true }],
  };
  relations.apply(relation, { primaryKey: ['id'] });
  assembler.relationChanged(16384);
  // The non-transactional message is decoded when its record is read: before its transaction,
  // whose commit record starts where the message's record ends.
  assembler.handle(
    { tag: 'message', xid: undefined, transactional: false, lsn: MESSAGE_LSN, prefix: 'p', content: Buffer.from('x') },
    MESSAGE_LSN,
  );
  assembler.handle({ tag: 'begin', finalLsn: MESSAGE_LSN, commitTime: 0, xid: 750 }, MESSAGE_LSN);
  assembler.handle({ tag: 'insert', xid: undefined, relationId: 16384, newTuple: ['1'] }, MESSAGE_LSN - 0x40);
  assembler.handle(
    { tag: 'commit', flags: 0, commitLsn: MESSAGE_LSN, endLsn: MESSAGE_LSN + 0x30, commitTime: 0 },
    MESSAGE_LSN,
  );
  return out;
}

test(
  'a non-transactional message and the first change of ' + 'the transaction committing at its LSN have different ids',
  () => {
    const out = scenario(0);
    assert.deepEqual(out.ids, ['0/1927B70:message', '0/1927B70:0']);
  },
);

test(
  'the position acknowledged for a non-transactional message is its LSN: a restart there skips the message, ' +
    'not its transaction',
  () => {
    const first = scenario(0);
    const acknowledged = first.commits[0] as Lsn;
    assert.equal(acknowledged, MESSAGE_LSN, 'not past the LSN the transaction commits at');
    const resumed = scenario(acknowledged);
    assert.deepEqual(resumed.ids, ['0/1927B70:0'], 'the message is not delivered again, the transaction is');
  },
);
