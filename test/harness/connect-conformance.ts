/**
 * Checks `envelope.format: json-with-schema` lines the way Kafka Connect's JsonConverter
 * (schemas.enable=true) reads them: every payload value must fit its field schema (type, range,
 * optional, base64 for bytes), a struct's payload may hold no field its schema does not declare, and
 * the Debezium logical types pgcdc names must hold what their name promises (ISO instants for
 * ZonedTimestamp, JSON text for Json, ...). The lead's Kafka Connect test runs Connect's own
 * JsonConverter over the same topics; this is the quick, broker-free check.
 *
 * Numbers are read losslessly (test/fixtures/all-types.ts), so int64 ranges are exact.
 */
import { JsonNumber, parseJsonLossless, type LosslessJson } from '../fixtures/all-types.ts';

/** A schema as JsonConverter writes it. */
export interface ConnectSchemaJson {
  type: string;
  optional: boolean;
  name?: string;
  version?: number;
  parameters?: Record<string, string>;
  default?: unknown;
  field?: string;
  fields?: ConnectSchemaJson[];
  items?: ConnectSchemaJson;
  keys?: ConnectSchemaJson;
  values?: ConnectSchemaJson;
}

export interface Violation {
  /** Where: `value.payload.after.col[2]`. */
  readonly path: string;
  readonly problem: string;
}

const INTEGER_RANGES: Record<string, readonly [bigint, bigint]> = {
  int8: [-(2n ** 7n), 2n ** 7n - 1n],
  int16: [-(2n ** 15n), 2n ** 15n - 1n],
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
};
/** Non-finite doubles: JsonConverter (Jackson) writes them as these strings. */
const NON_FINITE = new Set(['NaN', 'Infinity', '-Infinity']);
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const ISO_OFFSET_DATE_TIME =
  /^[+-]?\d{4,}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2}(?::\d{2})?)$/;
const ISO_OFFSET_TIME = /^\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2}(?::\d{2})?)$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ISO_DURATION = /^P(?:-?\d+Y)?(?:-?\d+M)?(?:-?\d+D)?(?:T(?:-?\d+H)?(?:-?\d+M)?(?:-?\d+(?:\.\d+)?S)?)?$/;

function isObject(value: LosslessJson | undefined): value is { [key: string]: LosslessJson } {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof JsonNumber);
}

/** What a Debezium logical name promises about a string (undefined: nothing more than the type). */
function logicalProblem(name: string, value: string): string | undefined {
  switch (name) {
    case 'io.debezium.time.ZonedTimestamp':
      return ISO_OFFSET_DATE_TIME.test(value) ? undefined : 'not an ISO 8601 date-time with offset';
    case 'io.debezium.time.ZonedTime':
      return ISO_OFFSET_TIME.test(value) ? undefined : 'not an ISO 8601 time with offset';
    case 'io.debezium.time.Interval':
      return ISO_DURATION.test(value) ? undefined : 'not an ISO 8601 duration';
    case 'io.debezium.data.Uuid':
      return UUID.test(value) ? undefined : 'not a UUID';
    case 'io.debezium.data.Json':
      try {
        JSON.parse(value);
        return undefined;
      } catch {
        return 'not JSON text';
      }
    default:
      return undefined;
  }
}

/** Every way `value` does not fit `schema` (JsonConverter's convertToConnect, plus the logical names). */
export function checkValue(schema: ConnectSchemaJson, value: LosslessJson | undefined, path: string): Violation[] {
  if (value === null || value === undefined) {
    return schema.optional || schema.default !== undefined ? [] : [{ path, problem: 'null in a required field' }];
  }
  const wrong = (what: string): Violation[] => [{ path, problem: `${schema.type} field holds ${what}` }];
  const describe = (v: LosslessJson): string =>
    v instanceof JsonNumber ? `number ${v.text}` : Array.isArray(v) ? 'an array' : `${typeof v} ${JSON.stringify(v)}`;
  switch (schema.type) {
    case 'int8':
    case 'int16':
    case 'int32':
    case 'int64': {
      if (!(value instanceof JsonNumber) || !/^-?\d+$/.test(value.text)) return wrong(describe(value));
      const [min, max] = INTEGER_RANGES[schema.type] as readonly [bigint, bigint];
      const n = BigInt(value.text);
      return n < min || n > max ? wrong(`${value.text}, out of range`) : [];
    }
    case 'float32':
    case 'float64':
      return value instanceof JsonNumber || (typeof value === 'string' && NON_FINITE.has(value))
        ? []
        : wrong(describe(value));
    case 'boolean':
      return typeof value === 'boolean' ? [] : wrong(describe(value));
    case 'string': {
      if (typeof value !== 'string') return wrong(describe(value));
      const problem = schema.name === undefined ? undefined : logicalProblem(schema.name, value);
      return problem === undefined ? [] : [{ path, problem: `${schema.name}: ${problem}: ${JSON.stringify(value)}` }];
    }
    case 'bytes':
      return typeof value === 'string' && BASE64.test(value) ? [] : wrong(`${describe(value)}, not base64`);
    case 'array':
      if (!Array.isArray(value)) return wrong(describe(value));
      if (schema.items === undefined) return [{ path, problem: 'array schema without items' }];
      return value.flatMap((v, i) => checkValue(schema.items as ConnectSchemaJson, v, `${path}[${i}]`));
    case 'map':
      if (!isObject(value) || schema.keys?.type !== 'string' || schema.values === undefined)
        return wrong(describe(value));
      return Object.entries(value).flatMap(([k, v]) =>
        checkValue(schema.values as ConnectSchemaJson, v, `${path}[${JSON.stringify(k)}]`),
      );
    case 'struct': {
      if (!isObject(value)) return wrong(describe(value));
      const fields = schema.fields ?? [];
      const declared = new Set(fields.map((f) => f.field));
      const undeclared = Object.keys(value)
        .filter((k) => !declared.has(k))
        .map((k) => ({ path: `${path}.${k}`, problem: 'payload field not in the schema' }));
      return [...undeclared, ...fields.flatMap((f) => checkValue(f, value[f.field ?? ''], `${path}.${f.field ?? ''}`))];
    }
    default:
      return [{ path, problem: `unknown schema type ${schema.type}` }];
  }
}

/** One side of a record: null, or `{"schema":...,"payload":...}` whose payload fits its schema. */
function checkPart(part: LosslessJson | undefined, path: string): Violation[] {
  if (part === null || part === undefined) return [];
  if (!isObject(part) || !isObject(part.schema) || !('payload' in part))
    return [{ path, problem: 'not {"schema":...,"payload":...}' }];
  return checkValue(JSON.parse(JSON.stringify(part.schema)) as ConnectSchemaJson, part.payload, `${path}.payload`);
}

/**
 * Checks one event line: its key and its value. A column named in `source.unavailable_columns` may
 * hold the TOAST placeholder, so only its type is checked there, not what its logical name promises.
 */
export function checkLine(line: string): Violation[] {
  const event = parseJsonLossless(line);
  if (!isObject(event)) return [{ path: '', problem: 'not an object' }];
  const value = event.value;
  const payload = isObject(value) ? value.payload : undefined;
  const source = isObject(payload) ? payload.source : undefined;
  const unavailable = isObject(source) && Array.isArray(source.unavailable_columns) ? source.unavailable_columns : [];
  const placeholders = new Set(
    unavailable.flatMap((name) => (typeof name === 'string' ? [`value.payload.after.${name}`] : [])),
  );
  return [...checkPart(event.key, 'key'), ...checkPart(value, 'value')].filter(
    (v) => !(placeholders.has(v.path) && v.problem.startsWith('io.debezium.')),
  );
}

/** An event line with its key and value unwrapped to their payloads (to replay json-with-schema events). */
export function unwrapLine(line: string): string {
  const event = JSON.parse(line) as Record<string, unknown>;
  const payload = (part: unknown): unknown =>
    part !== null && typeof part === 'object' && 'payload' in part ? part.payload : part;
  return JSON.stringify({ ...event, key: payload(event.key), value: payload(event.value) });
}
