/**
 * `values.style: debezium`: the types whose JSON Debezium's PostgreSQL connector writes differently
 * under its defaults (decimal.handling.mode=precise, time.precision.mode=adaptive,
 * interval.handling.mode=numeric, hstore.handling.mode=json, binary.handling.mode=bytes), each as
 * the encoder and its Kafka Connect schema, so a pipeline built for Debezium reads pgcdc's values
 * unchanged. Every other type is written as pgcdc's own style writes it, which is already Debezium's
 * form (integers, floats, bool, text, uuid, bytea as base64 bytes, ...).
 *
 * Each encoder starts from pgcdc's own encoder of the type, so the server text is validated once,
 * by the same code, and only then rewritten. Differences that remain are listed in docs/types.md.
 */
import { encodeHstore } from './arrays.ts';
import { connect, type ConnectSchema } from './connect-schema.ts';
import type { JsonEncoder } from './json-grammar.ts';
import {
  encodeDate,
  encodeInterval,
  encodeTime,
  encodeTimestamp,
  encodeTimestamptz,
  encodeTimetz,
} from './temporal.ts';
import { OID } from './type-oids.ts';

export interface StyledType {
  readonly encode: JsonEncoder;
  readonly schema: ConnectSchema;
}

/** numeric's typmod: ((precision << 16) | scale) + 4; -1 without one. */
function numericTypmod(typeMod: number): { precision: number; scale: number } | undefined {
  if (typeMod < 4) return undefined;
  const packed = typeMod - 4;
  return { precision: (packed >> 16) & 0xffff, scale: packed & 0xffff };
}

/** Java's BigInteger.toByteArray: two's complement, big-endian, the fewest bytes, as base64. */
export function twosComplementBase64(n: bigint): string {
  const magnitude = n < 0n ? -n - 1n : n;
  const bytes = Math.ceil((magnitude.toString(2).length + 1) / 8);
  const value = n < 0n ? (1n << BigInt(bytes * 8)) + n : n;
  return Buffer.from(value.toString(16).padStart(bytes * 2, '0'), 'hex').toString('base64');
}

/** The digits of a decimal string ("-12.50") as an unscaled integer at `scale` (extra digits cut). */
function unscaled(digits: string, scale: number): bigint {
  const negative = digits.startsWith('-');
  const [whole = '0', fraction = ''] = (negative ? digits.slice(1) : digits).split('.');
  const padded = (fraction + '0'.repeat(scale)).slice(0, scale);
  const n = BigInt(`${whole}${padded}` || '0');
  return negative ? -n : n;
}

/** The decimal in a pgcdc numeric JSON string (`"1.50"`), or undefined for NaN and the infinities. */
function decimalText(json: string): string | undefined {
  const text = json.slice(1, -1);
  return /^-?\d/.test(text) ? text : undefined;
}

const DECIMAL = 'org.apache.kafka.connect.data.Decimal';

/** Decimal with a fixed scale: base64 of the unscaled value. NaN/Infinity have no Decimal: null. */
function fixedDecimal(base: JsonEncoder, scale: number, parameters: Record<string, string>): StyledType {
  return {
    encode: (text) => {
      const digits = decimalText(base(text));
      return digits === undefined ? 'null' : `"${twosComplementBase64(unscaled(digits, scale))}"`;
    },
    schema: connect('bytes', { name: DECIMAL, version: 1, parameters }),
  };
}

/** io.debezium.data.VariableScaleDecimal: {scale, value} with trailing zeros stripped (scale >= 0). */
function variableDecimal(base: JsonEncoder): StyledType {
  return {
    encode: (text) => {
      const digits = decimalText(base(text));
      if (digits === undefined) return 'null';
      let [whole = '0', fraction = ''] = digits.split('.');
      fraction = fraction.replace(/0+$/, '');
      const negative = whole.startsWith('-');
      if (negative) whole = whole.slice(1);
      const n = BigInt(`${whole}${fraction}`);
      return `{"scale":${fraction.length},"value":"${twosComplementBase64(negative ? -n : n)}"}`;
    },
    schema: connect('struct', {
      name: 'io.debezium.data.VariableScaleDecimal',
      version: 1,
      doc: 'Variable scaled decimal',
      fields: [
        { field: 'scale', schema: connect('int32', {}, false) },
        { field: 'value', schema: connect('bytes', {}, false) },
      ],
    }),
  };
}

/** Days from 1970-01-01 to the proleptic Gregorian date (astronomical year), exact for any year. */
function epochDay(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const mp = (month + 9) % 12;
  const doy = Math.floor((153 * mp + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

const ISO_DATE = /^([+-]?\d{4,})-(\d{2})-(\d{2})/;
const ISO_TIME = /(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?/;

function daysOf(iso: string): number | undefined {
  const m = ISO_DATE.exec(iso);
  return m === null ? undefined : epochDay(Number(m[1]), Number(m[2]), Number(m[3]));
}

/** Microseconds of the day in `HH:MM:SS[.ffffff]` (24:00:00 included). */
function microsOfDay(iso: string): bigint | undefined {
  const m = ISO_TIME.exec(iso);
  if (m === null) return undefined;
  const fraction = (m[4] ?? '').padEnd(6, '0');
  return (BigInt(m[1] ?? 0) * 3600n + BigInt(m[2] ?? 0) * 60n + BigInt(m[3] ?? 0)) * 1_000_000n + BigInt(fraction);
}

/** The time precision of a time/timestamp typmod (-1: the default, 6). */
const precisionOf = (typeMod: number): number => (typeMod < 0 ? 6 : typeMod);

/** `infinity` and `-infinity` have no epoch count: null (docs/types.md). */
const unquote = (json: string): string => json.slice(1, -1);

function date(): StyledType {
  return {
    encode: (text) => {
      const days = daysOf(unquote(encodeDate(text)));
      return days === undefined ? 'null' : String(days);
    },
    schema: connect('int32', { name: 'io.debezium.time.Date', version: 1 }),
  };
}

function time(typeMod: number): StyledType {
  const millis = precisionOf(typeMod) <= 3;
  return {
    encode: (text) => {
      const micros = microsOfDay(unquote(encodeTime(text)));
      if (micros === undefined) return 'null';
      return String(millis ? micros / 1000n : micros);
    },
    schema: millis
      ? connect('int32', { name: 'io.debezium.time.Time', version: 1 })
      : connect('int64', { name: 'io.debezium.time.MicroTime', version: 1 }),
  };
}

function timestamp(typeMod: number): StyledType {
  const millis = precisionOf(typeMod) <= 3;
  return {
    encode: (text) => {
      const iso = unquote(encodeTimestamp(text));
      const days = daysOf(iso);
      const micros = microsOfDay(iso.slice(iso.indexOf('T')));
      if (days === undefined || micros === undefined) return 'null';
      const total = BigInt(days) * 86_400_000_000n + micros;
      return String(millis ? total / 1000n - (total % 1000n < 0n ? 1n : 0n) : total);
    },
    schema: millis
      ? connect('int64', { name: 'io.debezium.time.Timestamp', version: 1 })
      : connect('int64', { name: 'io.debezium.time.MicroTimestamp', version: 1 }),
  };
}

/** Java's ISO year: 4 digits for 0-9999, else a sign (`+10000`, `-0043`). */
function javaYear(iso: string): string {
  const m = /^([+-]?)(\d+)(-.*)$/.exec(iso);
  if (m === null) return iso;
  const year = Number(`${m[1] ?? ''}${m[2] ?? ''}`);
  const digits = String(Math.abs(year)).padStart(4, '0');
  return `${year < 0 ? '-' : year > 9999 ? '+' : ''}${digits}${m[3] ?? ''}`;
}

function timestamptz(): StyledType {
  return {
    encode: (text) => {
      const iso = unquote(encodeTimestamptz(text));
      return ISO_DATE.test(iso) ? `"${javaYear(iso)}"` : 'null';
    },
    schema: connect('string', { name: 'io.debezium.time.ZonedTimestamp', version: 1 }),
  };
}

/** timetz in UTC, as Debezium's ZonedTime: `04:30:00.123Z` for `10:00:00.123+05:30`. */
function timetz(): StyledType {
  return {
    encode: (text) => {
      const iso = unquote(encodeTimetz(text));
      const micros = microsOfDay(iso);
      const m = /([+-])(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(iso);
      if (micros === undefined || m === null) return 'null';
      const offset =
        (BigInt(m[2] ?? 0) * 3600n + BigInt(m[3] ?? 0) * 60n + BigInt(m[4] ?? 0)) * (m[1] === '-' ? -1n : 1n);
      const day = 86_400_000_000n;
      const utc = (((micros - offset * 1_000_000n) % day) + day) % day;
      const seconds = utc / 1_000_000n;
      const fraction = (utc % 1_000_000n).toString().padStart(6, '0').replace(/0+$/, '');
      const pad = (n: bigint): string => n.toString().padStart(2, '0');
      const clock = `${pad(seconds / 3600n)}:${pad((seconds / 60n) % 60n)}:${pad(seconds % 60n)}`;
      return `"${clock}${fraction === '' ? '' : `.${fraction}`}Z"`;
    },
    schema: connect('string', { name: 'io.debezium.time.ZonedTime', version: 1 }),
  };
}

const DAYS_PER_MONTH_AVG = 365.25 / 12;

/** interval as io.debezium.time.MicroDuration: Debezium's arithmetic, months of 30.4375 days, in doubles. */
function interval(): StyledType {
  return {
    encode: (text) => {
      const iso = unquote(encodeInterval(text));
      const m = /^P(?:(-?\d+)Y)?(?:(-?\d+)M)?(?:(-?\d+)D)?(?:T(?:(-?\d+)H)?(?:(-?\d+)M)?(?:(-?[\d.]+)S)?)?$/.exec(iso);
      if (m === null) return 'null';
      const [years, months, days, hours, minutes] = [1, 2, 3, 4, 5].map((i) => Number(m[i] ?? 0)) as [
        number,
        number,
        number,
        number,
        number,
      ];
      const numberOfDays = (years * 12 + months) * DAYS_PER_MONTH_AVG + days;
      const seconds = ((numberOfDays * 24 + hours) * 60 + minutes) * 60 + Number(m[6] ?? 0);
      return BigInt(Math.trunc(seconds * 1e6)).toString();
    },
    schema: connect('int64', { name: 'io.debezium.time.MicroDuration', version: 1 }),
  };
}

const JSON_SCHEMA = connect('string', { name: 'io.debezium.data.Json', version: 1 });

/** hstore as hstore.handling.mode=json: the map's JSON text in a string. */
export const DEBEZIUM_HSTORE: StyledType = {
  encode: (text) => JSON.stringify(encodeHstore(text)),
  schema: JSON_SCHEMA,
};

/**
 * The Debezium form of a built-in type, or undefined when pgcdc's own is already Debezium's.
 * `numericBase`/`moneyBase` are pgcdc's string encoders of numeric and money (values.ts).
 */
export function debeziumScalar(
  oid: number,
  typeMod: number,
  numericBase: JsonEncoder,
  moneyBase: JsonEncoder,
): StyledType | undefined {
  switch (oid) {
    case OID.numeric: {
      const mod = numericTypmod(typeMod);
      return mod === undefined
        ? variableDecimal(numericBase)
        : fixedDecimal(numericBase, mod.scale, {
            scale: String(mod.scale),
            'connect.decimal.precision': String(mod.precision),
          });
    }
    case OID.money:
      // money.fraction.digits defaults to 2.
      return fixedDecimal(moneyBase, 2, { scale: '2' });
    case OID.date:
      return date();
    case OID.time:
      return time(typeMod);
    case OID.timetz:
      return timetz();
    case OID.timestamp:
      return timestamp(typeMod);
    case OID.timestamptz:
      return timestamptz();
    case OID.interval:
      return interval();
    case OID.json:
    case OID.jsonb:
      return { encode: (text) => JSON.stringify(text), schema: JSON_SCHEMA };
    default:
      return undefined;
  }
}
