/**
 * `envelope.format: json-with-schema`: the Kafka Connect JsonConverter shape with
 * `schemas.enable=true`, `{"schema":<schema>,"payload":<data>}`, for an event's key and value, with
 * the struct names and field layout of Debezium's PostgreSQL connector (`<topic>.Key`,
 * `<topic>.Value`, `<topic>.Envelope`, `io.debezium.connector.postgresql.Source`). The schemas are
 * built and encoded once per table shape; serializers splice the bytes in (json.ts).
 *
 * The schemas describe the payload pgcdc writes (docs/events.md, "json-with-schema", has the table and every
 * difference from Debezium that remains).
 */
import { connect, connectSchemaFor, withOptional, type ConnectSchema } from '../source/connect-schema.ts';
import type { ColumnSchema, TableSchema } from '../source/relations.ts';
import { DEFAULT_VALUE_OPTIONS } from '../source/values.ts';
import type { EnvelopeSettings } from './topics.ts';

/** How events are written (`envelope.format`). */
export type EnvelopeFormat = 'json' | 'json-with-schema';

/** Writes a schema as JsonConverter does: type, fields/items/keys+values, optional, name, version, parameters. */
export function schemaJson(schema: ConnectSchema): string {
  let out = `{"type":"${schema.type}"`;
  if (schema.fields !== undefined)
    out += `,"fields":[${schema.fields
      .map((f) => `${schemaJson(f.schema).slice(0, -1)},"field":${JSON.stringify(f.field)}}`)
      .join(',')}]`;
  if (schema.items !== undefined) out += `,"items":${schemaJson(schema.items)}`;
  if (schema.keys !== undefined) out += `,"keys":${schemaJson(schema.keys)}`;
  if (schema.values !== undefined) out += `,"values":${schemaJson(schema.values)}`;
  out += `,"optional":${schema.optional}`;
  if (schema.name !== undefined) out += `,"name":${JSON.stringify(schema.name)}`;
  if (schema.version !== undefined) out += `,"version":${schema.version}`;
  if (schema.doc !== undefined) out += `,"doc":${JSON.stringify(schema.doc)}`;
  if (schema.parameters !== undefined) out += `,"parameters":${JSON.stringify(schema.parameters)}`;
  if (schema.default !== undefined) out += `,"default":${JSON.stringify(schema.default)}`;
  return `${out}}`;
}

const required = (schema: ConnectSchema): ConnectSchema => withOptional(schema, false);
const STRING = connect('string', {}, false);
const INT64 = connect('int64', {}, false);
const OPTIONAL_STRING = connect('string');
const OPTIONAL_INT64 = connect('int64');

/** The schema of one column's values (hand-built TableSchemas in tests carry none: the built-in type's). */
export function columnValueSchema(column: ColumnSchema): ConnectSchema {
  return column.valueSchema ?? connectSchemaFor(column.typeOid, () => undefined, DEFAULT_VALUE_OPTIONS);
}

/** Debezium's `source.snapshot` enum (io.debezium.connector.SnapshotRecord, lower case). */
const SNAPSHOT_SCHEMA = connect('string', {
  name: 'io.debezium.data.Enum',
  version: 1,
  parameters: {
    allowed: 'true,first,first_in_data_collection,last_in_data_collection,last,false,incremental,recovery',
  },
  default: 'false',
});

/**
 * `io.debezium.connector.postgresql.Source` as Debezium builds it (without origin/origin_lsn, which pgcdc
 * never writes), plus pgcdc's `commit_lsn` and `unavailable_columns`.
 */
export const SOURCE_SCHEMA: ConnectSchema = connect(
  'struct',
  {
    name: 'io.debezium.connector.postgresql.Source',
    version: 1,
    fields: [
      { field: 'version', schema: STRING },
      { field: 'connector', schema: STRING },
      { field: 'name', schema: STRING },
      { field: 'ts_ms', schema: INT64 },
      { field: 'snapshot', schema: SNAPSHOT_SCHEMA },
      { field: 'db', schema: STRING },
      { field: 'sequence', schema: OPTIONAL_STRING },
      { field: 'ts_us', schema: OPTIONAL_INT64 },
      { field: 'ts_ns', schema: OPTIONAL_INT64 },
      { field: 'schema', schema: STRING },
      { field: 'table', schema: STRING },
      { field: 'txId', schema: OPTIONAL_INT64 },
      { field: 'lsn', schema: OPTIONAL_INT64 },
      { field: 'xmin', schema: OPTIONAL_INT64 },
      { field: 'commit_lsn', schema: OPTIONAL_STRING },
      { field: 'unavailable_columns', schema: connect('array', { items: STRING }) },
    ],
  },
  false,
);

/** Debezium's transaction block (`event.block`). */
export const TRANSACTION_BLOCK_SCHEMA: ConnectSchema = connect('struct', {
  name: 'event.block',
  version: 1,
  fields: [
    { field: 'id', schema: STRING },
    { field: 'total_order', schema: INT64 },
    { field: 'data_collection_order', schema: INT64 },
  ],
});

/** The record key: the key columns, required (primary key and replica identity columns are NOT NULL). */
export function keySchema(topic: string, table: TableSchema): ConnectSchema {
  return connect(
    'struct',
    {
      name: `${topic}.Key`,
      fields: table.keyIndexes.map((i) => {
        const column = table.columns[i] as ColumnSchema;
        return { field: column.name, schema: required(columnValueSchema(column)) };
      }),
    },
    false,
  );
}

/**
 * The row (`before`, `after`): key columns required, every other column optional, whatever its
 * NOT NULL constraint: pgcdc writes null for the non-key columns of a delete's `before` under
 * REPLICA IDENTITY DEFAULT, and omits (toast.mode omit) or nulls unchanged TOAST values that have no
 * placeholder of their type.
 */
export function rowSchema(topic: string, table: TableSchema): ConnectSchema {
  const keys = new Set(table.keyIndexes);
  return connect('struct', {
    name: `${topic}.Value`,
    fields: table.columns.map((column, i) => ({
      field: column.name,
      schema: withOptional(columnValueSchema(column), !keys.has(i)),
    })),
  });
}

/** The change event value: `<topic>.Envelope`, version 2, in Debezium's field order. */
export function envelopeSchema(topic: string, table: TableSchema): ConnectSchema {
  const row = rowSchema(topic, table);
  return connect(
    'struct',
    {
      name: `${topic}.Envelope`,
      version: 2,
      fields: [
        { field: 'before', schema: row },
        { field: 'after', schema: row },
        { field: 'source', schema: SOURCE_SCHEMA },
        { field: 'transaction', schema: TRANSACTION_BLOCK_SCHEMA },
        { field: 'op', schema: STRING },
        { field: 'ts_ms', schema: OPTIONAL_INT64 },
        { field: 'ts_us', schema: OPTIONAL_INT64 },
        { field: 'ts_ns', schema: OPTIONAL_INT64 },
      ],
    },
    false,
  );
}

/**
 * The value of a flat event (`envelope.type: flat`): the row's fields, every one optional (a
 * truncate's value has none, a delete's old row under REPLICA IDENTITY DEFAULT only the key), then
 * the metadata fields, as Debezium's ExtractNewRecordState with `add.fields` writes its schema.
 */
export function flatValueSchema(topic: string, table: TableSchema): ConnectSchema {
  return connect('struct', {
    name: `${topic}.Value`,
    fields: [
      ...table.columns.map((column) => ({ field: column.name, schema: withOptional(columnValueSchema(column), true) })),
      { field: '__op', schema: STRING },
      { field: '__deleted', schema: connect('boolean', {}, false) },
      { field: '__table', schema: STRING },
      { field: '__lsn', schema: INT64 },
      { field: '__ts_ms', schema: INT64 },
    ],
  });
}

/** Logical decoding messages: Debezium's MessageKey and MessageValue. */
export const MESSAGE_KEY_SCHEMA: ConnectSchema = connect(
  'struct',
  {
    name: 'io.debezium.connector.postgresql.MessageKey',
    version: 1,
    fields: [{ field: 'prefix', schema: OPTIONAL_STRING }],
  },
  false,
);
export const MESSAGE_VALUE_SCHEMA: ConnectSchema = connect(
  'struct',
  {
    name: 'io.debezium.connector.postgresql.MessageValue',
    version: 1,
    fields: [
      { field: 'op', schema: STRING },
      { field: 'ts_ms', schema: OPTIONAL_INT64 },
      { field: 'source', schema: SOURCE_SCHEMA },
      { field: 'transaction', schema: TRANSACTION_BLOCK_SCHEMA },
      {
        field: 'message',
        schema: connect('struct', {
          name: 'io.debezium.connector.postgresql.Message',
          version: 1,
          fields: [
            { field: 'prefix', schema: OPTIONAL_STRING },
            { field: 'content', schema: connect('bytes') },
          ],
        }),
      },
    ],
  },
  false,
);

/** Transaction metadata events: Debezium's TransactionMetadataKey and TransactionMetadataValue. */
export const TRANSACTION_KEY_SCHEMA: ConnectSchema = connect(
  'struct',
  {
    name: 'io.debezium.connector.common.TransactionMetadataKey',
    version: 1,
    fields: [{ field: 'id', schema: STRING }],
  },
  false,
);
export const TRANSACTION_VALUE_SCHEMA: ConnectSchema = connect(
  'struct',
  {
    name: 'io.debezium.connector.common.TransactionMetadataValue',
    version: 1,
    fields: [
      { field: 'status', schema: STRING },
      { field: 'id', schema: STRING },
      { field: 'event_count', schema: OPTIONAL_INT64 },
      {
        field: 'data_collections',
        schema: connect('array', {
          items: connect('struct', {
            name: 'event.collection',
            version: 1,
            fields: [
              { field: 'data_collection', schema: STRING },
              { field: 'event_count', schema: INT64 },
            ],
          }),
        }),
      },
      { field: 'ts_ms', schema: INT64 },
    ],
  },
  false,
);

/**
 * The JSON written for an unchanged TOAST value of a column (`toast.placeholder`). In json, the
 * placeholder string. In json-with-schema, the placeholder in the column's schema type, as Debezium
 * does: bytes as the placeholder's bytes (base64), string arrays as a one-element array, maps as
 * `{placeholder: placeholder}`; a type that cannot hold it (number arrays, numbers) gets null,
 * and the column is named in `source.unavailable_columns` either way.
 */
export function placeholderJson(settings: EnvelopeSettings, schema: ConnectSchema): string {
  const text = JSON.stringify(settings.unavailableValue);
  if (settings.format === 'json') return text;
  const base64 = JSON.stringify(Buffer.from(settings.unavailableValue, 'utf8').toString('base64'));
  switch (schema.type) {
    case 'string':
      return text;
    case 'bytes':
      return base64;
    case 'map':
      return `{${text}:${text}}`;
    case 'array':
      return schema.items?.type === 'string' ? `[${text}]` : schema.items?.type === 'bytes' ? `[${base64}]` : 'null';
    default:
      return 'null';
  }
}

/** `{"schema":<schema>,"payload":` for an event part built as a string (rare events); close with `}`. */
export function payloadOpen(schema: ConnectSchema): string {
  return `{"schema":${schemaJson(schema)},"payload":`;
}

/** Wraps a key or value JSON text in its schema under `format` (unchanged under json, and for null). */
export function withSchema(format: EnvelopeFormat, schema: ConnectSchema, json: string): string {
  return format === 'json-with-schema' && json !== 'null' ? `${payloadOpen(schema)}${json}}` : json;
}

const SCHEMA_CHANGE_COLUMN: ConnectSchema = connect(
  'struct',
  {
    fields: [
      { field: 'name', schema: STRING },
      { field: 'type_oid', schema: INT64 },
      { field: 'type_mod', schema: connect('int32', {}, false) },
      { field: 'key', schema: connect('boolean', {}, false) },
    ],
  },
  false,
);

/** pgcdc's own schema-change events (no Debezium counterpart, so no struct names). */
export const SCHEMA_CHANGE_KEY_SCHEMA: ConnectSchema = connect(
  'struct',
  {
    fields: [
      { field: 'schema', schema: STRING },
      { field: 'table', schema: STRING },
    ],
  },
  false,
);
export const SCHEMA_CHANGE_VALUE_SCHEMA: ConnectSchema = connect(
  'struct',
  {
    fields: [
      { field: 'op', schema: STRING },
      { field: 'change', schema: STRING },
      {
        field: 'source',
        schema: connect(
          'struct',
          {
            fields: [
              ...['version', 'connector', 'name', 'db', 'schema', 'table'].map((field) => ({ field, schema: STRING })),
              { field: 'txId', schema: INT64 },
              { field: 'commit_lsn', schema: STRING },
            ],
          },
          false,
        ),
      },
      { field: 'ts_ms', schema: INT64 },
      { field: 'relation_id', schema: INT64 },
      {
        field: 'table',
        schema: connect(
          'struct',
          {
            fields: [
              { field: 'schema', schema: STRING },
              { field: 'table', schema: STRING },
              { field: 'replica_identity', schema: STRING },
              { field: 'columns', schema: connect('array', { items: SCHEMA_CHANGE_COLUMN }, false) },
            ],
          },
          false,
        ),
      },
      { field: 'previous', schema: connect('array', { items: SCHEMA_CHANGE_COLUMN }) },
    ],
  },
  false,
);
