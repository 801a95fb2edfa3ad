/** Builds serializers with a shaping config and writes one event line, for the shaping unit tests. */
import assert from 'node:assert/strict';
import { parseConfig, type ConfigInput } from '../../../src/config.ts';
import { TableSerializer, readIdHead, transactionContext, type Op } from '../../../src/envelope/json.ts';
import { loadShaping } from '../../../src/envelope/shaping.ts';
import type { TopicNaming } from '../../../src/envelope/topics.ts';
import { TopicRegistry } from '../../../src/sinks/batch.ts';
import { EventBatchBuilder } from '../../../src/sinks/batch-builder.ts';
import { parseTablePattern, tableMatches } from '../../../src/selection/patterns.ts';
import type { TupleData } from '../../../src/protocol/messages.ts';
import { DEFAULT_VALUE_OPTIONS, isPlainStringEncoder, jsonEncoderFor } from '../../../src/source/values.ts';
import type { TableSchema } from '../../../src/source/relations.ts';

export const SALT = 'pepper-for-tests';
/** One registry for every serializer and batch here, so topic numbers agree. */
const REGISTRY = new TopicRegistry();
export const COMMIT_MS = 1763719200123;
export const LSN = 27409352;

export function table(
  name: string,
  columns: [string, number][],
  keyIndexes: number[],
  replicaIdentity: 'd' | 'f' = 'd',
): TableSchema {
  const [schema = 'public', tableName = name] = name.split('.');
  return {
    relationId: 1,
    schema,
    table: tableName,
    replicaIdentity,
    columns: columns.map(([column, oid]) => {
      const encode = jsonEncoderFor(oid, () => undefined, DEFAULT_VALUE_OPTIONS);
      return { name: column, typeOid: oid, typeMod: -1, encode, plainString: isPlainStringEncoder(encode) };
    }),
    keyIndexes,
  };
}

/** The naming a `pgcdc run` with `config` (a YAML config as an object) would build. */
export function namingFor(config: ConfigInput, env: NodeJS.ProcessEnv = { SALT }): TopicNaming {
  const parsed = parseConfig(config);
  return {
    prefix: 'shop',
    database: 'shopdb',
    naming: 'prefix',
    envelope: {
      format: parsed.envelope.format,
      unavailableValue: parsed.toast.placeholder,
      type: parsed.envelope.type,
      deletes: parsed.envelope.deletes,
    },
    shaping: loadShaping(
      parsed.shaping,
      (text) => {
        const pattern = parseTablePattern(text);
        return (schema, name) => tableMatches(pattern, schema, name);
      },
      env,
    ),
  };
}

export interface Written {
  line: string;
  topic: string;
  event: { id: string; topic: string; key: unknown; headers?: unknown; value: Record<string, unknown> | null };
}

function finish(b: EventBatchBuilder, s: TableSerializer): Written {
  b.endEvent(s.topicNumber);
  const batch = b.take(1);
  const line = batch.line(0);
  return { line, topic: batch.topic(0), event: JSON.parse(line) as Written['event'] };
}

/** One change event as `TableSerializer.write` writes it. */
export function writeChange(
  s: TableSerializer,
  op: Op,
  key: TupleData | null,
  before: TupleData | null,
  after: TupleData | null,
): Written {
  const tx = transactionContext(7712, '0/1A2B3C8', COMMIT_MS);
  const inTx = s.inTransaction(tx);
  inTx.count = 1;
  const b = new EventBatchBuilder(REGISTRY, 16, 1);
  b.startEvent();
  s.write(b, op, key, before, after, tx, inTx, LSN, 1, COMMIT_MS + 2);
  return finish(b, s);
}

/** The two events of a primary-key change. */
export function writeKeyChange(s: TableSerializer, old: TupleData, row: TupleData): [Written, Written] {
  const tx = transactionContext(7712, '0/1A2B3C8', COMMIT_MS);
  const inTx = s.inTransaction(tx);
  const out = (['d', 'c'] as const).map((op, i) => {
    const b = new EventBatchBuilder(REGISTRY, 16, 1);
    b.startEvent();
    s.writeKeyChange(b, op, old, row, tx, inTx, LSN, i + 1, COMMIT_MS + 2);
    return finish(b, s);
  });
  return [out[0] as Written, out[1] as Written];
}

/** A snapshot read. */
export function writeRead(s: TableSerializer, row: TupleData): Written {
  const b = new EventBatchBuilder(REGISTRY, 16, 1);
  b.startEvent();
  s.writeRead(b, row, readIdHead('0/1000:r:0:'), 5, s.readTail('true', LSN, '0/1A2B3C8', COMMIT_MS + 9));
  return finish(b, s);
}

export function serializer(t: TableSchema, naming: TopicNaming): TableSerializer {
  const s = new TableSerializer(t, naming, REGISTRY);
  assert.ok(s.topicNumber >= 0);
  return s;
}
