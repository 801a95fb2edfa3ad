/**
 * The relation cache: pgoutput Relation messages turned into `TableSchema`s, each with the value
 * encoders of its columns resolved once, so the per-row path only indexes arrays.
 *
 * Relation ids are table OIDs: a table dropped and recreated gets a new id, and a Relation message
 * with a known id replaces the schema (columns added, dropped, renamed or retyped after DDL).
 */
import type { PgoutputMessage, RelationColumn, ReplicaIdentity } from '../protocol/messages.ts';
import { CdcError } from '../core/errors.ts';
import { isPlainStringEncoder, jsonEncoderFor, type TypeLookup, type ValueOptions } from './values.ts';
import type { JsonEncoder } from './json-grammar.ts';
import { connectSchemaFor, type ConnectSchema } from './connect-schema.ts';

export type RelationMessage = Extract<PgoutputMessage, { tag: 'relation' }>;

export interface ColumnSchema {
  readonly name: string;
  readonly typeOid: number;
  readonly typeMod: number;
  readonly encode: JsonEncoder;
  /** The value goes out as a plain JSON string of its text (see isPlainStringEncoder). */
  readonly plainString: boolean;
  /**
   * The Kafka Connect schema of what `encode` writes (connect-schema.ts), for json-with-schema.
   * Absent in schemas built by hand (tests): the envelope then derives it from the built-in type.
   */
  readonly valueSchema?: ConnectSchema;
}

export interface TableSchema {
  readonly relationId: number;
  readonly schema: string;
  readonly table: string;
  readonly replicaIdentity: ReplicaIdentity;
  readonly columns: readonly ColumnSchema[];
  /**
   * Indexes into `columns` of the event key: the primary key, else the replica identity key; empty for keyless tables.
   * */
  readonly keyIndexes: readonly number[];
}

/** What the cache needs to know about a table beyond the Relation message. */
export interface TableFacts {
  readonly primaryKey: readonly string[];
  /** For a leaf partition published under its own name: the partitioned table to report instead. */
  readonly root?: { readonly schema: string; readonly table: string } | undefined;
}

function keyIndexesFor(
  columns: readonly RelationColumn[],
  facts: TableFacts | undefined,
  identity: ReplicaIdentity,
): number[] {
  const byName = new Map(columns.map((c, i) => [c.name, i]));
  if (facts && facts.primaryKey.length > 0) {
    const indexes = facts.primaryKey.map((name) => byName.get(name));
    if (indexes.every((i): i is number => i !== undefined)) return indexes;
  }
  // REPLICA IDENTITY FULL flags every column; that is not a key.
  if (identity === 'f') return [];
  const flagged: number[] = [];
  columns.forEach((c, i) => {
    if (c.isKey) flagged.push(i);
  });
  return flagged;
}

export class RelationCache {
  private readonly tables = new Map<number, TableSchema>();
  private readonly lookup: TypeLookup;
  private readonly options: ValueOptions;

  constructor(lookup: TypeLookup, options: ValueOptions) {
    this.lookup = lookup;
    this.options = options;
  }

  /** Builds and stores the schema for a Relation message. */
  apply(message: RelationMessage, facts: TableFacts | undefined): TableSchema {
    const columns = message.columns.map((c) => {
      const encode = jsonEncoderFor(c.typeOid, this.lookup, this.options, c.typeMod);
      return {
        name: c.name,
        typeOid: c.typeOid,
        typeMod: c.typeMod,
        encode,
        plainString: isPlainStringEncoder(encode),
        valueSchema: connectSchemaFor(c.typeOid, this.lookup, this.options, c.typeMod),
      };
    });
    const schema: TableSchema = {
      relationId: message.relationId,
      schema: facts?.root?.schema ?? message.namespace,
      table: facts?.root?.table ?? message.name,
      replicaIdentity: message.replicaIdentity,
      columns,
      keyIndexes: keyIndexesFor(message.columns, facts, message.replicaIdentity),
    };
    this.tables.set(message.relationId, schema);
    return schema;
  }

  get(relationId: number): TableSchema {
    const table = this.tables.get(relationId);
    if (!table) {
      throw new CdcError(
        'DECODE_UNKNOWN_RELATION',
        `change for relation ${relationId} arrived before its Relation message`,
        {
          hint: 'this is a protocol violation by the server or a bug in pgcdc; restart to re-read the schema',
        },
      );
    }
    return table;
  }

  has(relationId: number): boolean {
    return this.tables.has(relationId);
  }
}
