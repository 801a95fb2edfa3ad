/**
 * The bridge between backfill rows and the streaming side: a TableSchema (the shape the serializer
 * and the relation cache use) for a table described from the catalog, and the exact key text that
 * the window (snapshot/dblog-window.ts) compares log events and chunk rows by.
 */
import type { TupleData } from '../protocol/messages.ts';
import { connectSchemaFor } from '../source/connect-schema.ts';
import type { TableSchema } from '../source/relations.ts';
import { isPlainStringEncoder, jsonEncoderFor, type TypeLookup, type ValueOptions } from '../source/values.ts';
import type { BackfillTable } from './query.ts';

/**
 * The TableSchema of a backfilled table, with the value encoders the stream would use for the
 * same columns. Its column order is the table's, which is also the order of pgoutput tuples (as
 * long as no column is dropped or added meanwhile: after DDL the stream's Relation message wins
 * and a backfill must describe the table again).
 */
export function backfillTableSchema(table: BackfillTable, lookup: TypeLookup, options: ValueOptions): TableSchema {
  const columns = table.columns.map((c) => {
    const encode = jsonEncoderFor(c.typeOid, lookup, options, c.typeMod);
    const valueSchema = connectSchemaFor(c.typeOid, lookup, options, c.typeMod);
    return {
      name: c.name,
      typeOid: c.typeOid,
      typeMod: c.typeMod,
      encode,
      plainString: isPlainStringEncoder(encode),
      valueSchema,
    };
  });
  return {
    relationId: table.oid,
    schema: table.schema,
    table: table.table,
    // The backfill keys as the stream does (primary key, else replica identity index); the stream's replica identity is
    // read from its Relation message.
    replicaIdentity: 'd',
    columns,
    keyIndexes: table.keyIndexes,
  };
}

/**
 * The event key as JSON text, `{"id":42,"region":"eu"}`, from a tuple in table column order (a
 * chunk row, or a pgoutput new/old tuple). The same text as the `key` of the events, so two keys
 * are the same row exactly when their texts are equal. Undefined when it cannot be known: a keyless
 * table, a key value sent as unchanged TOAST or in binary. A window treats that as `unknown-key`.
 */
export function keyText(table: TableSchema, tuple: Readonly<TupleData>): string | undefined {
  if (table.keyIndexes.length === 0) return undefined;
  let out = '{';
  for (let i = 0; i < table.keyIndexes.length; i++) {
    const index = table.keyIndexes[i] as number;
    const column = table.columns[index];
    const value = tuple[index];
    if (column === undefined || value === undefined) return undefined;
    if (i > 0) out += ',';
    out += `${JSON.stringify(column.name)}:`;
    if (value === null) out += 'null';
    else if (typeof value === 'string') out += column.encode(value);
    else return undefined;
  }
  return `${out}}`;
}
