/**
 * What a Relation message does to the stream: the table's key, partition root and any new types are looked up
 * in the catalog (StreamCatalog), then its schema is rebuilt, the selection learns its name, and, with schema
 * change events on, the new shape becomes an event inside the transaction that first uses it. The stream loop
 * holds every later frame until `apply` settles: the changes after a Relation message decode with its schema.
 */
import type { Logger } from '../core/log.ts';
import type { TableRef } from '../postgres/catalog.ts';
import type { CapturedRelations } from '../selection/captured-relations.ts';
import type { RelationCache, RelationMessage } from '../source/relations.ts';
import type { PgType } from '../source/values.ts';
import type { ChangeAssembler } from './assembler.ts';
import type { Delivery } from './delivery.ts';
import type { StreamCatalog } from './loop-ports.ts';
import type { SchemaChanges } from './schema-changes.ts';

export interface RelationUpdateParts {
  readonly catalog: StreamCatalog;
  /** The types the value encoders look up: filled here when a Relation names one not loaded yet. */
  readonly types: Map<number, PgType>;
  readonly tables: readonly TableRef[];
  readonly relations: RelationCache;
  readonly captured: CapturedRelations;
  readonly assembler: ChangeAssembler;
  readonly delivery: Delivery;
  /** Schema-change events (`schemaChanges.events`), with the topic they go to; undefined when off. */
  readonly schemaChanges: { readonly tracker: SchemaChanges; readonly topic: number } | undefined;
  readonly log: Logger;
}

export class RelationUpdates {
  private readonly parts: RelationUpdateParts;
  private readonly tableFacts = new Map<number, TableRef>();
  private readonly rootsLogged = new Set<number>();

  constructor(parts: RelationUpdateParts) {
    this.parts = parts;
    for (const table of parts.tables) this.tableFacts.set(table.oid, table);
  }

  /** Learns the table's key, partition root and any new types from the catalog, then rebuilds its schema. */
  async apply(message: RelationMessage): Promise<void> {
    const { catalog, types, relations, assembler, delivery, log } = this.parts;
    const unknownType = message.columns.some((c) => !types.has(c.typeOid));
    if (unknownType) for (const [oid, type] of await catalog.types()) types.set(oid, type);
    const known = this.tableFacts.get(message.relationId);
    const fresh = (await catalog.table(message.relationId)) ?? known;
    if (fresh) this.tableFacts.set(message.relationId, fresh);
    const root = await catalog.partitionRoot(message.relationId);
    if (root && !this.rootsLogged.has(message.relationId)) {
      this.rootsLogged.add(message.relationId);
      log.info(
        { partition: `${message.namespace}.${message.name}`, root: `${root.schema}.${root.table}` },
        'changes of this partition are reported under its partitioned table (publish_via_partition_root = true ' +
          'on the publication makes PostgreSQL do this itself)',
      );
    }
    relations.apply(message, fresh ? { primaryKey: fresh.primaryKey, root } : { primaryKey: [], root });
    this.parts.captured.relation(message, root);
    assembler.relationChanged(message.relationId);
    const schemas = this.parts.schemaChanges;
    if (schemas) {
      // Inside the transaction that first uses the new shape: the event and the stored shape go
      // out with its commit.
      const line = schemas.tracker.applied(relations.get(message.relationId), assembler.openTransaction, Date.now());
      delivery.setResumeState({ ...delivery.currentResumeState, schemas: schemas.tracker.stored });
      if (line !== undefined) delivery.event(schemas.topic, line);
    }
  }
}
