/**
 * The source's type catalog: every row of pg_type, for the value encoders' TypeLookup (domains,
 * arrays of user types, enums, extension types such as hstore). One query, a few hundred rows on
 * a fresh database (plus a row type and an array type per table); the same SQL on PostgreSQL 10
 * to 18.
 */
import type pg from 'pg';
import { sourceFailure } from './source-errors.ts';
import type { PgType } from '../source/values.ts';

// elemOid is set only for true array types, i.e. types some element type names as its typarray.
// pg_type.typelem alone would also flag fixed-length subscriptable types (point, name, box...)
// and int2vector/oidvector, whose text is not array text.
// OIDs are read as text: pg's default parsers vary with the client's configuration, and an OID
// above 2^31 must not go through int4.
const TYPES_SQL = `
select t.oid::text as oid,
       t.typname as name,
       n.nspname as schema,
       t.typtype as kind,
       case when exists (select 1 from pg_catalog.pg_type e where e.typarray = t.oid)
            then t.typelem else 0 end::text as elem,
       t.typbasetype::text as base,
       t.typdelim as delimiter
  from pg_catalog.pg_type t
  join pg_catalog.pg_namespace n on n.oid = t.typnamespace`;

interface TypeRow {
  oid: string;
  name: string;
  schema: string;
  kind: string;
  elem: string;
  base: string;
  delimiter: string;
}

const KINDS: ReadonlySet<string> = new Set<PgType['kind']>(['b', 'c', 'd', 'e', 'm', 'p', 'r']);

function isKind(kind: string): kind is PgType['kind'] {
  return KINDS.has(kind);
}

/**
 * Loads every type of the connected database, keyed by OID. A typtype this version does not know
 * (a future PostgreSQL) is recorded as a pseudo-type, which the encoders print as text.
 */
export async function loadPgTypes(client: pg.ClientBase): Promise<Map<number, PgType>> {
  let rows: TypeRow[];
  try {
    rows = (await client.query<TypeRow>(TYPES_SQL)).rows;
  } catch (cause) {
    throw sourceFailure(cause, 'reading the type catalog (pg_type)');
  }
  const types = new Map<number, PgType>();
  for (const row of rows) {
    const oid = Number(row.oid);
    types.set(oid, {
      oid,
      name: row.name,
      schema: row.schema,
      kind: isKind(row.kind) ? row.kind : 'p',
      elemOid: Number(row.elem),
      baseOid: Number(row.base),
      delimiter: row.delimiter,
    });
  }
  return types;
}
