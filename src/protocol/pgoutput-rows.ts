/**
 * The row-shaped parts of pgoutput messages: TupleData (the values of Insert, Update and Delete) and the
 * column list and replica identity of a Relation message.
 *
 * Separate from the message decoder (pgoutput.ts), which reads each message's frame (type byte, xid,
 * markers) and keeps the stream block state: these read one structure from the decoder's shared reader,
 * wherever it points, and keep no state. readTuple is the hottest loop of the decoder: a plain function
 * (one monomorphic call), one switch per column, no closures, the array sized up front.
 */
import type { BufferReader } from './reader.ts';
import { describeType, VALUE_BINARY, VALUE_NULL, VALUE_TEXT, VALUE_TOAST } from './pgoutput-codes.ts';
import {
  UNCHANGED_TOAST,
  type RelationColumn,
  type ReplicaIdentity,
  type TupleData,
  type TupleValue,
} from './messages.ts';

/**
 * TupleData: Int16 ncols { Byte1('n') | Byte1('u') | Byte1('t') Int32 len Byte[len] | Byte1('b') Int32 len Byte[len]
 * }*ncols. `what` names the tuple in errors ('new tuple', 'key tuple', 'old tuple').
 */
export function readTuple(r: BufferReader, what: string): TupleData {
  const count = r.i16('tuple column count');
  if (count < 0) throw r.invalid(`negative column count ${count} in ${what}`);
  const values = new Array<TupleValue>(count);
  for (let i = 0; i < count; i++) {
    const kind = r.u8('tuple column kind');
    switch (kind) {
      case VALUE_TEXT:
        values[i] = r.utf8(r.i32('text value length'), 'text value');
        break;
      case VALUE_NULL:
        values[i] = null;
        break;
      case VALUE_TOAST:
        values[i] = UNCHANGED_TOAST;
        break;
      case VALUE_BINARY:
        values[i] = r.copyBytes(r.i32('binary value length'), 'binary value');
        break;
      default:
        throw r.invalid(`unknown tuple column kind ${describeType(kind)} in column ${i} of ${what}`);
    }
  }
  return values;
}

/** A Relation message's Int8 replicaIdentity: 'd' default, 'n' nothing, 'f' full, 'i' index. */
export function readReplicaIdentity(r: BufferReader): ReplicaIdentity {
  const byte = r.u8('replica identity');
  if (byte === 0x64) return 'd';
  if (byte === 0x6e) return 'n';
  if (byte === 0x66) return 'f';
  if (byte === 0x69) return 'i';
  throw r.invalid(`unknown replica identity ${describeType(byte)}`);
}

/** A Relation message's columns: Int16 ncols { Int8 flags String name Int32 typeOid Int32 typmod }*ncols. */
export function readRelationColumns(r: BufferReader): RelationColumn[] {
  const count = r.i16('column count');
  if (count < 0) throw r.invalid(`negative column count ${count}`);
  const columns: RelationColumn[] = [];
  for (let i = 0; i < count; i++) {
    const flags = r.u8('column flags');
    const columnName = r.cstring('column name');
    const typeOid = r.u32('column type oid');
    const typeMod = r.i32('column type modifier');
    columns.push({ isKey: (flags & 1) !== 0, name: columnName, typeOid, typeMod });
  }
  return columns;
}
