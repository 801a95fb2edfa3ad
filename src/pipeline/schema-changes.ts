/**
 * Schema-change events (`schemaChanges.events`): one event on `<prefix>.schema_changes` each time a
 * captured table's shape changes (columns added, dropped, renamed or retyped; key changed), and
 * when a table is first seen (including a table dropped and created again, which has a new
 * relation id).
 *
 * PostgreSQL sends a Relation message before the first change of a table in every session and
 * after every DDL, so Relation messages alone cannot tell a change from a restart. Each table's
 * last shape (a fingerprint) is therefore stored with the checkpoint (`schemas`), set at the same
 * transaction boundary as the event: an event is delivered exactly when the stored shape differs,
 * once, whether the DDL happened while pgcdc ran, just before a crash, or while it was down.
 *
 * The event is part of the transaction that first used the new shape: its id is
 * `<commit_lsn>:schema:<relation id>:<n>`, stable when the transaction is delivered again.
 */
import type { TableSchema } from '../source/relations.ts';
import { topicName, type TopicNaming } from '../envelope/topics.ts';
import { PGCDC_VERSION } from '../envelope/json.ts';
import { SCHEMA_CHANGE_KEY_SCHEMA, SCHEMA_CHANGE_VALUE_SCHEMA, withSchema } from '../envelope/schemas.ts';

interface ColumnShape {
  readonly name: string;
  readonly type_oid: number;
  readonly type_mod: number;
  readonly key: boolean;
}

interface Shape {
  readonly schema: string;
  readonly table: string;
  readonly replica_identity: string;
  readonly columns: readonly ColumnShape[];
}

function shapeOf(table: TableSchema): Shape {
  const keys = new Set(table.keyIndexes);
  return {
    schema: table.schema,
    table: table.table,
    replica_identity: table.replicaIdentity,
    columns: table.columns.map((c, i) => ({
      name: c.name,
      type_oid: c.typeOid,
      type_mod: c.typeMod,
      key: keys.has(i),
    })),
  };
}

/** Where the event goes: the open transaction's commit LSN and xid. */
export interface SchemaEventContext {
  readonly commitLsn: string;
  readonly xid: number;
  /** The transaction was delivered before a restart: its shapes are already stored. */
  readonly skip: boolean;
}

export class SchemaChanges {
  private readonly naming: TopicNaming;
  /** Relation id -> stored shape (JSON). Replaced, never mutated, so the checkpoint can hold it. */
  private shapes: Readonly<Record<string, string>>;
  private readonly perTransaction = new Map<string, number>();
  private lastCommitLsn = '';

  constructor(naming: TopicNaming, stored: Readonly<Record<string, string>> | undefined) {
    this.naming = naming;
    this.shapes = stored ?? {};
  }

  get stored(): Readonly<Record<string, string>> {
    return this.shapes;
  }

  /**
   * The relation's schema was (re)applied. Returns the event line when its shape differs from
   * the stored one (and records the new shape), undefined otherwise.
   */
  applied(table: TableSchema, tx: SchemaEventContext | undefined, nowMs: number): string | undefined {
    const id = String(table.relationId);
    const shape = shapeOf(table);
    const text = JSON.stringify(shape);
    const before = this.shapes[id];
    if (before === text) return undefined;
    this.shapes = { ...this.shapes, [id]: text };
    if (tx === undefined || tx.skip) return undefined;
    if (tx.commitLsn !== this.lastCommitLsn) {
      this.perTransaction.clear();
      this.lastCommitLsn = tx.commitLsn;
    }
    const n = (this.perTransaction.get(id) ?? 0) + 1;
    this.perTransaction.set(id, n);
    const previous = before === undefined ? null : (JSON.parse(before) as Shape);
    const event = {
      id: `${tx.commitLsn}:schema:${id}:${n}`,
      topic: topicName(this.naming, 'schema_changes'),
      key: { schema: shape.schema, table: shape.table },
      value: {
        op: 'schema',
        change: previous === null ? 'create' : 'alter',
        source: {
          version: PGCDC_VERSION,
          connector: 'postgresql',
          name: this.naming.prefix,
          db: this.naming.database,
          schema: shape.schema,
          table: shape.table,
          txId: tx.xid,
          commit_lsn: tx.commitLsn,
        },
        ts_ms: nowMs,
        relation_id: table.relationId,
        table: shape,
        previous: previous?.columns ?? null,
      },
    };
    // json-with-schema wraps key and value in their schemas (envelope/schemas.ts); json leaves them as they are.
    const format = this.naming.envelope?.format ?? 'json';
    return (
      `{"id":${JSON.stringify(event.id)},"topic":${JSON.stringify(event.topic)},` +
      `"key":${withSchema(format, SCHEMA_CHANGE_KEY_SCHEMA, JSON.stringify(event.key))},` +
      `"value":${withSchema(format, SCHEMA_CHANGE_VALUE_SCHEMA, JSON.stringify(event.value))}}`
    );
  }
}
