/**
 * Column values: the text pgoutput sends for one non-null value to the JSON text of that value
 * in an event. The event serializer concatenates these fragments into the JSONL line, so this is
 * the per-value hot path: encoders are chosen once per column (`jsonEncoderFor`) and each call
 * only validates the text and, where the JSON form differs, rewrites it. No JS value is built.
 *
 * Contract: an encoder returns valid JSON on one line, or throws CdcError('VALUE_INVALID') naming
 * the type. It never passes text it has not validated into the output.
 *
 * The text is the type's output function under the session settings every pgcdc connection
 * sets (DateStyle=ISO, TimeZone=UTC, IntervalStyle=iso_8601, extra_float_digits=3,
 * bytea_output=hex). The mapping per type is in docs/types.md.
 */
import { arrayEncoder, encodeHstore } from './arrays.ts';
import {
  JSON_MULTI_LINE,
  JSON_ONE_LINE,
  checkJson,
  compactJson,
  invalidValue,
  isJsonInteger,
  scanNumber,
  type JsonEncoder,
} from './json-grammar.ts';
import {
  encodeDate,
  encodeInterval,
  encodeTime,
  encodeTimestamp,
  encodeTimestamptz,
  encodeTimetz,
} from './temporal.ts';
import { BUILTIN_ARRAY_ELEMENTS, OID } from './type-oids.ts';
import { DEBEZIUM_HSTORE, debeziumScalar } from './debezium-values.ts';

/** One row of pg_type, as loaded by postgres/pg-types.ts. */
export interface PgType {
  oid: number;
  name: string;
  schema: string;
  /** pg_type.typtype: base, composite, domain, enum, multirange, pseudo, range. */
  kind: 'b' | 'c' | 'd' | 'e' | 'm' | 'p' | 'r';
  /** The element type when this is an array type, else 0 (also for point, name, int2vector...). */
  elemOid: number;
  /** The base type of a domain, else 0. */
  baseOid: number;
  /** pg_type.typdelim: what separates this type's values as array elements (';' for box). */
  delimiter: string;
}

/** Finds a type by OID; may know nothing (built-in types never need it). */
export type TypeLookup = (oid: number) => PgType | undefined;

export interface ValueOptions {
  /** numeric and money: a JSON string with the exact digits, or the digits as a number literal. */
  numeric: 'string' | 'number';
  /** json and jsonb: the document itself, or its text as a JSON string. */
  json: 'value' | 'string';
  /** bytea: the bytes as base64 (RFC 4648, padded), lowercase hex, or base64url (unpadded). */
  bytea: 'base64' | 'hex' | 'base64url';
  /**
   * pgcdc: the encodings above; debezium: the types Debezium's defaults write differently
   * (numeric, money, dates, times, intervals, json, hstore) as Debezium does (debezium-values.ts).
   */
  style?: 'pgcdc' | 'debezium' | undefined;
}

export const DEFAULT_VALUE_OPTIONS: ValueOptions = Object.freeze({ numeric: 'string', json: 'value', bytea: 'base64' });

/** Any other type: its text as a JSON string. */
const encodeText: JsonEncoder = (text) => JSON.stringify(text);

/**
 * True when `encoder` writes the text as a plain JSON string, so a serializer may quote the value
 * itself without calling it (the hot path for text, varchar, uuid and the like).
 */
export function isPlainStringEncoder(encoder: JsonEncoder): boolean {
  return encoder === encodeText;
}

const encodeBool: JsonEncoder = (text) => {
  if (text === 't') return 'true';
  if (text === 'f') return 'false';
  throw invalidValue('bool', text);
};

/**
 * Integers go out as the server printed them: never through a JS number, so int8 and xid8 keep
 * every digit. `maxLength` is the widest text of the type (sign included).
 */
function integerEncoder(typeName: string, maxLength: number, unsigned: boolean): JsonEncoder {
  const encoder: JsonEncoder = (text) => {
    if (isJsonInteger(text, maxLength, unsigned)) return text;
    throw invalidValue(typeName, text);
  };
  INTEGER_LIMITS.set(encoder, { maxLength, unsigned });
  return encoder;
}

/** The text grammar of an integer encoder: at most `maxLength` characters, a sign unless `unsigned`. */
export interface IntegerLimits {
  readonly maxLength: number;
  readonly unsigned: boolean;
}

const INTEGER_LIMITS = new Map<JsonEncoder, IntegerLimits>();

/**
 * The limits of `encoder` when it is one of the integer encoders, which write a valid text as it
 * is: a byte-level writer (envelope/copy-values.ts) checks the same grammar on the bytes and copies
 * them, calling the encoder (and so its error) only for a text that fails.
 */
export function integerLimits(encoder: JsonEncoder): IntegerLimits | undefined {
  return INTEGER_LIMITS.get(encoder);
}

/** True when `encoder` is bool's (`t` → true, `f` → false). */
export function isBoolEncoder(encoder: JsonEncoder): boolean {
  return encoder === encodeBool;
}

const encodeInt2 = integerEncoder('int2', 6, false);
const encodeInt4 = integerEncoder('int4', 11, false);
const encodeInt8 = integerEncoder('int8', 20, false);
const encodeOid = integerEncoder('oid', 10, true);
const encodeXid = integerEncoder('xid', 10, true);
const encodeCid = integerEncoder('cid', 10, true);
const encodeXid8 = integerEncoder('xid8', 20, true);

/** NaN and the infinities, which JSON numbers cannot hold: as strings, for floats and numeric. */
function specialNumber(text: string): string | undefined {
  if (text === 'NaN') return '"NaN"';
  if (text === 'Infinity') return '"Infinity"';
  if (text === '-Infinity') return '"-Infinity"';
  return undefined;
}

/**
 * float4/float8: the server's text is already a JSON number ("1.5", "1e+100", "-0"), printed
 * with enough digits to round-trip (shortest form on 12+, 17 significant digits on 10 and 11).
 */
function floatEncoder(typeName: string): JsonEncoder {
  return (text) => {
    if (scanNumber(text, 0) === text.length) return text;
    const special = specialNumber(text);
    if (special !== undefined) return special;
    throw invalidValue(typeName, text);
  };
}

const encodeFloat4 = floatEncoder('float4');
const encodeFloat8 = floatEncoder('float8');

/** numeric as a string with the exact digits and scale ("1.50" stays "1.50"). */
const encodeNumericString: JsonEncoder = (text) => {
  if (scanNumber(text, 0) === text.length) return `"${text}"`;
  const special = specialNumber(text);
  if (special !== undefined) return special;
  throw invalidValue('numeric', text);
};

/** numeric as a number literal with the server's digits (exact in the JSON text; a JS reader may round). */
const encodeNumericNumber: JsonEncoder = (text) => {
  if (scanNumber(text, 0) === text.length) return text;
  const special = specialNumber(text);
  if (special !== undefined) return special;
  throw invalidValue('numeric', text);
};

/**
 * money prints per lc_monetary. The C and en_US form ("$1,234.50", "-$1,234.50") becomes the
 * amount's digits ("-1234.50"), like numeric. Any other locale's form cannot be read safely
 * (which separator is the decimal point?), so it goes out as the server's text in a string.
 */
const MONEY = /^(-?)\$(\d{1,3}(?:,\d{3})*)(\.\d+)?$/;

function moneyDigits(text: string): string | undefined {
  const match = MONEY.exec(text);
  if (match === null) return undefined;
  return `${match[1] ?? ''}${(match[2] ?? '').replaceAll(',', '')}${match[3] ?? ''}`;
}

const encodeMoneyString: JsonEncoder = (text) => JSON.stringify(moneyDigits(text) ?? text);
const encodeMoneyNumber: JsonEncoder = (text) => moneyDigits(text) ?? JSON.stringify(text);

/** json/jsonb as the document itself. json keeps its text, so tabs and line breaks are squeezed out. */
function jsonValueEncoder(typeName: string): JsonEncoder {
  return (text) => {
    const check = checkJson(text);
    if (check === JSON_ONE_LINE) return text;
    if (check === JSON_MULTI_LINE) return compactJson(text);
    throw invalidValue(typeName, text);
  };
}

const encodeJsonValue = jsonValueEncoder('json');
const encodeJsonbValue = jsonValueEncoder('jsonb');

/**
 * bytea text is `\x` and two hex digits a byte. The bytes are decoded into a reused buffer
 * (Buffer.write stops at the first non-hex pair, so a short count means invalid text), then
 * re-encoded. Values above SCRATCH_LIMIT get a buffer of their own so one huge value does not
 * stay pinned in memory.
 */
const SCRATCH_LIMIT = 1 << 20;
let scratch = Buffer.allocUnsafe(4096);

function decodeBytea(text: string): Buffer {
  const n = text.length;
  if (n < 2 || text.charCodeAt(0) !== 92 || text.charCodeAt(1) !== 120 || (n & 1) !== 0) {
    throw invalidValue('bytea', text, 'expected \\x and hex digits (bytea_output=hex)');
  }
  const size = (n - 2) >>> 1;
  let target = scratch;
  if (size > scratch.length) {
    if (size > SCRATCH_LIMIT) target = Buffer.allocUnsafe(size);
    else target = scratch = Buffer.allocUnsafe(2 ** Math.ceil(Math.log2(size)));
  }
  if (size > 0 && target.write(text.slice(2), 0, size, 'hex') !== size) throw invalidValue('bytea', text, 'not hex');
  decodedSize = size;
  return target;
}
let decodedSize = 0;

const encodeByteaBase64: JsonEncoder = (text) => `"${decodeBytea(text).toString('base64', 0, decodedSize)}"`;
const encodeByteaBase64url: JsonEncoder = (text) => `"${decodeBytea(text).toString('base64url', 0, decodedSize)}"`;
const encodeByteaHex: JsonEncoder = (text) => {
  decodeBytea(text);
  return `"${text.slice(2)}"`;
};

/** The encoder of a built-in scalar type whose JSON is not just its text as a string. */
function builtinScalar(oid: number, options: ValueOptions): JsonEncoder | undefined {
  switch (oid) {
    case OID.bool:
      return encodeBool;
    case OID.int2:
      return encodeInt2;
    case OID.int4:
      return encodeInt4;
    case OID.int8:
      return encodeInt8;
    case OID.oid:
      return encodeOid;
    case OID.xid:
      return encodeXid;
    case OID.cid:
      return encodeCid;
    case OID.xid8:
      return encodeXid8;
    case OID.float4:
      return encodeFloat4;
    case OID.float8:
      return encodeFloat8;
    case OID.numeric:
      return options.numeric === 'number' ? encodeNumericNumber : encodeNumericString;
    case OID.money:
      return options.numeric === 'number' ? encodeMoneyNumber : encodeMoneyString;
    case OID.json:
      return options.json === 'string' ? encodeText : encodeJsonValue;
    case OID.jsonb:
      return options.json === 'string' ? encodeText : encodeJsonbValue;
    case OID.bytea:
      return options.bytea === 'hex'
        ? encodeByteaHex
        : options.bytea === 'base64url'
          ? encodeByteaBase64url
          : encodeByteaBase64;
    case OID.date:
      return encodeDate;
    case OID.time:
      return encodeTime;
    case OID.timetz:
      return encodeTimetz;
    case OID.timestamp:
      return encodeTimestamp;
    case OID.timestamptz:
      return encodeTimestamptz;
    case OID.interval:
      return encodeInterval;
    default:
      return undefined;
  }
}

/** Domains over domains are legal; a chain this long can only be a broken lookup. */
const MAX_DOMAIN_DEPTH = 32;

function resolve(oid: number, lookup: TypeLookup, options: ValueOptions, depth: number, typeMod: number): JsonEncoder {
  if (options.style === 'debezium') {
    const styled = debeziumScalar(oid, typeMod, encodeNumericString, encodeMoneyString);
    if (styled !== undefined) return styled.encode;
  }
  const scalar = builtinScalar(oid, options);
  if (scalar !== undefined) return scalar;
  const builtinArray = BUILTIN_ARRAY_ELEMENTS.get(oid);
  if (builtinArray !== undefined) {
    const [elemOid, elemName] = builtinArray;
    const element = resolve(elemOid, lookup, options, depth + 1, typeMod);
    return arrayEncoder(element, elemOid === OID.box ? ';' : ',', `${elemName}[]`);
  }
  const type = lookup(oid);
  if (type === undefined || depth > MAX_DOMAIN_DEPTH) return encodeText;
  switch (type.kind) {
    case 'd':
      return resolve(type.baseOid, lookup, options, depth + 1, -1);
    case 'b':
      if (type.elemOid !== 0) {
        // array_out separates elements with the element type's delimiter; pg_type copies it onto
        // the array type too, which is the fallback when the element is unknown.
        const element = lookup(type.elemOid);
        const delimiter = element?.delimiter ?? type.delimiter;
        const name = element === undefined ? type.name : `${element.name}[]`;
        return arrayEncoder(resolve(type.elemOid, lookup, options, depth + 1, typeMod), delimiter, name);
      }
      if (type.name === 'hstore') return options.style === 'debezium' ? DEBEZIUM_HSTORE.encode : encodeHstore;
      return encodeText;
    case 'c': // composite: the record text, e.g. (1,"a b"); its field types are not known here
    case 'e': // enum: the label
    case 'm':
    case 'p':
    case 'r': // ranges and multiranges: "[1,5)", "{[1,3),[7,9)}"
      return encodeText;
  }
}

/**
 * The encoder for values of `typeOid`. Built-in types are recognised by their fixed OIDs without
 * `lookup`; other types are resolved through it: domains as their base type, arrays through their
 * element type, hstore by name, and everything else (enums, composites, ranges, extension types,
 * and OIDs the lookup does not know) as the text in a JSON string. Call once per column, not per
 * value: array encoders are built here. `typeMod` (the column's) matters only to `style: debezium`
 * (numeric scale, time precision).
 */
export function jsonEncoderFor(typeOid: number, lookup: TypeLookup, options: ValueOptions, typeMod = -1): JsonEncoder {
  return resolve(typeOid, lookup, options, 0, typeMod);
}
