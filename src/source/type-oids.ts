/**
 * OIDs of PostgreSQL's built-in types. They are fixed in the server's catalog (pg_type.dat) and
 * identical on every major, so values of these types are encoded without asking the server.
 * test/integration/types.test.ts checks both tables below against pg_type on each major.
 */

/** The built-in scalar types whose JSON form is not simply their text as a string. */
export const OID = {
  bool: 16,
  bytea: 17,
  int8: 20,
  int2: 21,
  int4: 23,
  oid: 26,
  xid: 28,
  cid: 29,
  json: 114,
  float4: 700,
  float8: 701,
  money: 790,
  date: 1082,
  time: 1083,
  timestamp: 1114,
  timestamptz: 1184,
  interval: 1186,
  timetz: 1266,
  numeric: 1700,
  jsonb: 3802,
  xid8: 5069,
  /** The only built-in type whose elements an array separates with ';' rather than ','. */
  box: 603,
} as const;

/**
 * Built-in array type OID -> [element type OID, element type name], for every array type in
 * pg_catalog (PostgreSQL 10 to 18; a type missing on a major simply never occurs there).
 */
export const BUILTIN_ARRAY_ELEMENTS: ReadonlyMap<number, readonly [elemOid: number, elemName: string]> = new Map<
  number,
  readonly [number, string]
>([
  [1000, [16, 'bool']],
  [1001, [17, 'bytea']],
  [1002, [18, 'char']],
  [1003, [19, 'name']],
  [1016, [20, 'int8']],
  [1005, [21, 'int2']],
  [1006, [22, 'int2vector']],
  [1007, [23, 'int4']],
  [1008, [24, 'regproc']],
  [1009, [25, 'text']],
  [1028, [26, 'oid']],
  [1010, [27, 'tid']],
  [1011, [28, 'xid']],
  [1012, [29, 'cid']],
  [1013, [30, 'oidvector']],
  [199, [114, 'json']],
  [143, [142, 'xml']],
  [1017, [600, 'point']],
  [1018, [601, 'lseg']],
  [1019, [602, 'path']],
  [1020, [603, 'box']],
  [1027, [604, 'polygon']],
  [629, [628, 'line']],
  [651, [650, 'cidr']],
  [1021, [700, 'float4']],
  [1022, [701, 'float8']],
  [719, [718, 'circle']],
  [775, [774, 'macaddr8']],
  [791, [790, 'money']],
  [1040, [829, 'macaddr']],
  [1041, [869, 'inet']],
  [1034, [1033, 'aclitem']],
  [1014, [1042, 'bpchar']],
  [1015, [1043, 'varchar']],
  [1182, [1082, 'date']],
  [1183, [1083, 'time']],
  [1115, [1114, 'timestamp']],
  [1185, [1184, 'timestamptz']],
  [1187, [1186, 'interval']],
  [1270, [1266, 'timetz']],
  [1561, [1560, 'bit']],
  [1563, [1562, 'varbit']],
  [1231, [1700, 'numeric']],
  [2201, [1790, 'refcursor']],
  [2207, [2202, 'regprocedure']],
  [2208, [2203, 'regoper']],
  [2209, [2204, 'regoperator']],
  [2210, [2205, 'regclass']],
  [2211, [2206, 'regtype']],
  [4090, [4089, 'regnamespace']],
  [4097, [4096, 'regrole']],
  [4192, [4191, 'regcollation']], // 13+
  [2951, [2950, 'uuid']],
  [3221, [3220, 'pg_lsn']],
  [3643, [3614, 'tsvector']],
  [3644, [3642, 'gtsvector']],
  [3645, [3615, 'tsquery']],
  [3735, [3734, 'regconfig']],
  [3770, [3769, 'regdictionary']],
  [3807, [3802, 'jsonb']],
  [4073, [4072, 'jsonpath']], // 12+
  [2949, [2970, 'txid_snapshot']],
  [5039, [5038, 'pg_snapshot']], // 13+
  [271, [5069, 'xid8']], // 13+
  [3905, [3904, 'int4range']],
  [3907, [3906, 'numrange']],
  [3909, [3908, 'tsrange']],
  [3911, [3910, 'tstzrange']],
  [3913, [3912, 'daterange']],
  [3927, [3926, 'int8range']],
  [6150, [4451, 'int4multirange']], // 14+
  [6151, [4532, 'nummultirange']], // 14+
  [6152, [4533, 'tsmultirange']], // 14+
  [6153, [4534, 'tstzmultirange']], // 14+
  [6155, [4535, 'datemultirange']], // 14+
  [6157, [4536, 'int8multirange']], // 14+
  [1023, [702, 'abstime']], // 10-11
  [1024, [703, 'reltime']], // 10-11
  [1025, [704, 'tinterval']], // 10-11
  [1263, [2275, 'cstring']],
  [2287, [2249, 'record']],
]);
