/**
 * Kafka Connect schemas of column values: what `envelope.format: json-with-schema` declares for each
 * column (docs/types.md, "Kafka Connect schemas"). The schema describes the JSON the column encoder
 * of values.ts writes, so it follows the same resolution (domains, arrays, hstore) and the same
 * value options: a value pgcdc writes as a JSON string has a `string` schema. Debezium's logical
 * type names are used only where they describe pgcdc's encoding truthfully (io.debezium.time.ZonedTimestamp
 * for an ISO instant string, io.debezium.data.Json for a JSON document in a string, ...).
 *
 * Computed once per column (RelationCache.apply), never per value.
 */
import { BUILTIN_ARRAY_ELEMENTS, OID } from './type-oids.ts';
import type { TypeLookup, ValueOptions } from './values.ts';
import { DEBEZIUM_HSTORE, debeziumScalar } from './debezium-values.ts';

/** Kafka Connect's schema types (org.apache.kafka.connect.data.Schema.Type), as JsonConverter names them. */
export type ConnectType =
  | 'int8'
  | 'int16'
  | 'int32'
  | 'int64'
  | 'float32'
  | 'float64'
  | 'boolean'
  | 'string'
  | 'bytes'
  | 'array'
  | 'map'
  | 'struct';

/** One Kafka Connect schema, in the shape JsonConverter writes it with `schemas.enable=true`. */
export interface ConnectSchema {
  readonly type: ConnectType;
  readonly optional: boolean;
  /** The logical type or struct name. */
  readonly name?: string;
  readonly version?: number;
  readonly doc?: string;
  readonly parameters?: Readonly<Record<string, string>>;
  readonly default?: string | number | boolean;
  /** The element schema of an array. */
  readonly items?: ConnectSchema;
  /** The key and value schemas of a map. */
  readonly keys?: ConnectSchema;
  readonly values?: ConnectSchema;
  /** The fields of a struct, in order. */
  readonly fields?: readonly ConnectField[];
}

export interface ConnectField {
  readonly field: string;
  readonly schema: ConnectSchema;
}

/** Shorthand for a schema of `type`, optional unless said otherwise. */
export function connect(
  type: ConnectType,
  extra: Omit<ConnectSchema, 'type' | 'optional'> = {},
  optional = true,
): ConnectSchema {
  return { type, optional, ...extra };
}

/** A schema with its optional flag set. */
export function withOptional(schema: ConnectSchema, optional: boolean): ConnectSchema {
  return schema.optional === optional ? schema : { ...schema, optional };
}

/** Debezium's string logical types, each with its version (io.debezium.data.*, io.debezium.time.*). */
const named = (name: string): ConnectSchema => connect('string', { name, version: 1 });

/** The schema of a built-in scalar whose JSON is not a plain string, or that Debezium names. */
function builtinScalar(oid: number, options: ValueOptions): ConnectSchema | undefined {
  switch (oid) {
    case OID.bool:
      return connect('boolean');
    case OID.int2:
      return connect('int16');
    case OID.int4:
      return connect('int32');
    case OID.int8:
    case OID.oid:
    case OID.xid:
    case OID.cid:
      return connect('int64');
    case OID.xid8:
      // Unsigned 64-bit; values above 2^63 would need an epoch of 2^31 wraparounds (docs/types.md).
      return connect('int64');
    case OID.float4:
      return connect('float32');
    case OID.float8:
      return connect('float64');
    case OID.numeric:
    case OID.money:
      // `number` writes the digits as a JSON number: a reader takes it as a double, like Debezium's
      // decimal.handling.mode=double. `string` keeps the exact digits, like decimal.handling.mode=string.
      return connect(options.numeric === 'number' ? 'float64' : 'string');
    case OID.json:
    case OID.jsonb:
      // json-with-schema writes documents as strings (config.ts forces values.json: string).
      return options.json === 'string' ? named('io.debezium.data.Json') : connect('string');
    case OID.bytea:
      // JsonConverter's bytes are base64 (RFC 4648, padded) in a JSON string: exactly pgcdc's base64.
      return connect(options.bytea === 'base64' ? 'bytes' : 'string');
    case OID.timestamptz:
      // ISO 8601 with an offset (Z), the form of Debezium's ZonedTimestamp.
      return named('io.debezium.time.ZonedTimestamp');
    case OID.timetz:
      // ISO 8601 time with its offset, the form of Debezium's ZonedTime (pgcdc keeps the stored offset).
      return named('io.debezium.time.ZonedTime');
    case OID.interval:
      // The ISO 8601 duration, as Debezium's interval.handling.mode=string.
      return named('io.debezium.time.Interval');
    case UUID_OID:
      return named('io.debezium.data.Uuid');
    case XML_OID:
      return named('io.debezium.data.Xml');
    case TSVECTOR_OID:
      return named('io.debezium.data.Tsvector');
    default:
      // date, time, timestamp (ISO strings: Debezium has no string type for them), text, numeric
      // ranges, geometry, network, bit strings (as '0'/'1' text) and every other type.
      return undefined;
  }
}

const UUID_OID = 2950;
const XML_OID = 142;
const TSVECTOR_OID = 3614;
const MAX_DOMAIN_DEPTH = 32;

/** The styled encoders' base encoders are never called for a schema. */
const NO_ENCODER = (text: string): string => text;

function resolve(
  oid: number,
  lookup: TypeLookup,
  options: ValueOptions,
  depth: number,
  typeMod: number,
): ConnectSchema {
  if (options.style === 'debezium') {
    const styled = debeziumScalar(oid, typeMod, NO_ENCODER, NO_ENCODER);
    if (styled !== undefined) return styled.schema;
  }
  const scalar = builtinScalar(oid, options);
  if (scalar !== undefined) return scalar;
  const builtinArray = BUILTIN_ARRAY_ELEMENTS.get(oid);
  if (builtinArray !== undefined)
    return connect('array', { items: resolve(builtinArray[0], lookup, options, depth + 1, typeMod) });
  const type = lookup(oid);
  if (type === undefined || depth > MAX_DOMAIN_DEPTH) return connect('string');
  switch (type.kind) {
    case 'd':
      return resolve(type.baseOid, lookup, options, depth + 1, -1);
    case 'b':
      if (type.elemOid !== 0)
        return connect('array', { items: resolve(type.elemOid, lookup, options, depth + 1, typeMod) });
      if (type.name === 'hstore')
        return options.style === 'debezium'
          ? DEBEZIUM_HSTORE.schema
          : connect('map', { keys: connect('string', {}, false), values: connect('string') });
      if (type.name === 'ltree') return named('io.debezium.data.Ltree');
      return connect('string');
    case 'c':
    case 'e': // enum labels: a string (Debezium's io.debezium.data.Enum needs the labels, not loaded here)
    case 'm':
    case 'p':
    case 'r':
      return connect('string');
  }
}

/**
 * The schema of the values of `typeOid` as values.ts `jsonEncoderFor` writes them with `options`:
 * optional (a column's value may be SQL NULL; the envelope decides per field), array elements
 * optional (NULL elements). Arrays are declared with one dimension: a multi-dimensional value
 * (`{{1,2},{3,4}}`, written as nested arrays) does not match it (docs/types.md).
 */
export function connectSchemaFor(
  typeOid: number,
  lookup: TypeLookup,
  options: ValueOptions,
  typeMod = -1,
): ConnectSchema {
  return resolve(typeOid, lookup, options, 0, typeMod);
}
