/**
 * The workloads of bench/peers.ts. Each gets a database of its own in the bench's cluster, its
 * tables and publication, then one pgoutput slot per streaming tool at the same LSN (the first
 * created, the others copies of it), then its WAL backlog, then a marker transaction (one row in
 * `bench_end`): an LSN inside it is the threshold a durable checkpoint must pass, and its end is
 * pg_recvlogical's --endpos. Every tool then drains the same changes: the workload's plus the marker.
 *
 * The `snapshot` workload instead loads a table before anything reads it, for the tools' initial
 * snapshots.
 */
import pg from 'pg';
import type { EmbeddedCluster } from '../../src/embedded/cluster.ts';
import { parseLsn } from '../../src/protocol/lsn.ts';
import { createDatabase } from '../bench-cluster.ts';
import { pgbench } from '../pgbench.ts';

/** A workload: its tables, how many changes a --rows of N makes, and how they are written. */
export interface WorkloadSpec {
  readonly name: string;
  /** `stream`: a WAL backlog drained from slots; `snapshot`: a loaded table read by initial snapshots. */
  readonly kind: 'stream' | 'snapshot';
  /** The published tables (schema public), in pgcdc's --tables form. */
  readonly tables: readonly string[];
  /** The changes (rows written) for --rows `rows`. */
  readonly changes: (rows: number) => number;
  /** One line for the report: shape and transaction size. */
  readonly describe: string;
  /** Creates the tables (before the slots exist). */
  readonly prepare: (client: pg.Client, cluster: EmbeddedCluster, database: string) => Promise<void>;
  /** Writes `changes` changes. */
  readonly load: (client: pg.Client, cluster: EmbeddedCluster, database: string, changes: number) => Promise<void>;
}

/** What the tools drain (or read), and what each must deliver. */
export interface Backlog {
  readonly spec: WorkloadSpec;
  readonly database: string;
  readonly publication: string;
  /** The slot of each streaming tool, by tool name. */
  readonly slots: ReadonlyMap<string, string>;
  /** Changes every tool must deliver (the marker row included for stream workloads). */
  readonly expected: number;
  /** An LSN inside the marker transaction: a checkpoint at or past it covers everything. */
  readonly threshold: string;
  /** The end of the marker transaction's commit (pg_recvlogical --endpos). */
  readonly endLsn: string;
  readonly walMb: number;
  readonly loadMs: number;
}

const NARROW_TABLE = 'create table bench (id bigint primary key, v integer not null, t text not null)';
const NARROW_ROW = `g, (g * 7919) % 1000003, substr(md5(g::text), 1, 8)`;

/**
 * Inserts rows 1..rows with `select <row> from generate_series(lo, hi) g` in transactions of
 * `txSize`, all inside one DO block (COMMIT in a loop): no client round trip per transaction, so
 * even a million one-row transactions load quickly.
 */
async function insertBatched(
  client: pg.Client,
  table: string,
  row: string,
  rows: number,
  txSize: number,
): Promise<void> {
  await client.query(
    `do $$ declare lo bigint := 1; hi bigint; begin
       while lo <= ${rows} loop
         hi := least(${rows}, lo + ${txSize} - 1);
         insert into ${table} select ${row} from generate_series(lo, hi) g;
         commit;
         lo := hi + 1;
       end loop;
     end $$`,
  );
}

/** A narrow-insert workload: `changes(rows)` rows in transactions of `txSize`. */
function narrow(name: string, txSize: number, share: number): WorkloadSpec {
  return {
    name,
    kind: 'stream',
    tables: ['bench'],
    changes: (rows) => Math.max(1, Math.round(rows * share)),
    describe: `inserts into (bigint, integer, text(8)), ${txSize.toLocaleString('en-US')} per transaction`,
    prepare: async (client) => {
      await client.query(NARROW_TABLE);
    },
    load: (client, _cluster, _database, changes) => insertBatched(client, 'bench', NARROW_ROW, changes, txSize),
  };
}

/** 49 columns after the key: 7 types, 7 of each. */
const WIDE_TYPES: readonly { type: string; value: (k: number) => string }[] = [
  { type: 'integer', value: (k) => `((g * ${k}) % 100000)::integer` },
  { type: 'bigint', value: (k) => `g * 1000 + ${k}` },
  { type: 'numeric(12,2)', value: (k) => `((g * ${k}) % 1000000) / 100.0` },
  { type: 'text', value: (k) => `substr(md5((g + ${k})::text), 1, 16)` },
  { type: 'boolean', value: (k) => `(g + ${k}) % 2 = 0` },
  { type: 'timestamptz', value: (k) => `timestamptz '2026-01-01 00:00:00+00' + (g + ${k}) * interval '1 second'` },
  { type: 'double precision', value: (k) => `(g * ${k}) / 7.0` },
];
const WIDE_COLUMNS = Array.from({ length: 49 }, (_, i) => {
  const kind = WIDE_TYPES[i % WIDE_TYPES.length]!;
  return { name: `c${i + 1}`, type: kind.type, value: kind.value(i + 1) };
});

/** 256 chained md5 digests: 8 kB of hex that pglz cannot shrink by its 25%, so it is stored out of line as is. */
const TOAST_BODY = `(select string_agg(md5(g::text || ':' || i), '') from generate_series(1, 256) i)`;

const JSONB_DOC =
  `jsonb_build_object('id', g, 'name', md5(g::text), 'active', g % 2 = 0, 'score', ((g * 7919) % 1000) / 10.0, ` +
  `'tags', jsonb_build_array('a' || g % 10, 'b' || g % 7, 'c' || g % 3), ` +
  `'address', jsonb_build_object('street', md5((g + 1)::text), 'city', 'city' || g % 100, ` +
  `'zip', lpad((g % 100000)::text, 5, '0')), ` +
  `'items', (select jsonb_agg(jsonb_build_object('sku', g * 10 + i, 'qty', i, 'price', i * 1.5)) ` +
  `from generate_series(1, 5) i), 'created', timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second')`;

/** pgbench's tpcb-like transaction: 3 updates and 1 insert. */
const PGBENCH_CLIENTS = 4;
const PGBENCH_CHANGES_PER_TX = 4;

const PER_PGBENCH_RUN = PGBENCH_CLIENTS * PGBENCH_CHANGES_PER_TX;

/** Every workload, by name, in the order the bench runs them. */
export const WORKLOADS: readonly WorkloadSpec[] = [
  narrow('narrow', 1000, 1),
  {
    name: 'pgbench',
    kind: 'stream',
    tables: ['pgbench_accounts', 'pgbench_branches', 'pgbench_tellers', 'pgbench_history'],
    changes: (rows) => Math.max(1, Math.round(rows / 8 / PER_PGBENCH_RUN)) * PER_PGBENCH_RUN,
    describe: `pgbench tpcb-like (3 updates + 1 insert per transaction), ${PGBENCH_CLIENTS} clients, scale 1`,
    prepare: async (client, cluster, database) => {
      await pgbench(cluster, database, ['-i', '-q', '-s', '1']);
      // pgbench_history has no key: pgcdc refuses a published table whose updates would fail.
      await client.query('alter table pgbench_history replica identity full');
    },
    load: async (_client, cluster, database, changes) => {
      const perClient = changes / PER_PGBENCH_RUN;
      await pgbench(cluster, database, ['-n', '-c', String(PGBENCH_CLIENTS), '-j', '2', '-t', String(perClient)]);
    },
  },
  {
    name: 'wide',
    kind: 'stream',
    tables: ['wide'],
    changes: (rows) => Math.max(1, Math.round(rows / 4)),
    describe:
      'inserts of 50 columns (bigint key; integer, bigint, numeric, text, boolean, timestamptz, float8), ' +
      '1,000 per transaction',
    prepare: async (client) => {
      await client.query(
        `create table wide (id bigint primary key, ${WIDE_COLUMNS.map((c) => `${c.name} ${c.type}`).join(', ')})`,
      );
    },
    load: (client, _cluster, _database, changes) =>
      insertBatched(client, 'wide', `g, ${WIDE_COLUMNS.map((c) => c.value).join(', ')}`, changes, 1000),
  },
  {
    name: 'toast',
    kind: 'stream',
    tables: ['toast'],
    changes: (rows) => Math.max(1, Math.round(rows / 20)),
    describe: 'inserts of (bigint, text of 8 kB incompressible: TOASTed), 100 per transaction',
    prepare: async (client) => {
      await client.query('create table toast (id bigint primary key, body text not null)');
    },
    load: (client, _cluster, _database, changes) => insertBatched(client, 'toast', `g, ${TOAST_BODY}`, changes, 100),
  },
  {
    name: 'jsonb',
    kind: 'stream',
    tables: ['docs'],
    changes: (rows) => Math.max(1, Math.round(rows / 4)),
    describe: 'inserts of (bigint, jsonb of ~600 bytes: nested objects and arrays), 1,000 per transaction',
    prepare: async (client) => {
      await client.query('create table docs (id bigint primary key, doc jsonb not null)');
    },
    load: (client, _cluster, _database, changes) => insertBatched(client, 'docs', `g, ${JSONB_DOC}`, changes, 1000),
  },
  narrow('small-tx', 1, 0.25),
  narrow('huge-tx', 100_000, 1),
  {
    name: 'snapshot',
    kind: 'snapshot',
    tables: ['bench'],
    changes: (rows) => rows,
    describe: 'initial snapshot of a loaded narrow table (bigint, integer, text(8))',
    prepare: async (client) => {
      await client.query(NARROW_TABLE);
    },
    load: async (client, _cluster, _database, changes) => {
      await client.query(`insert into bench select ${NARROW_ROW} from generate_series(1::bigint, ${changes}) g`);
      await client.query('vacuum analyze bench');
    },
  },
];

const lsnQuery = async (client: pg.Client, fn: string): Promise<string> =>
  (await client.query<{ lsn: string }>(`select ${fn}()::text as lsn`)).rows[0]!.lsn;

/** Creates the workload's database, tables, publication and slots (`slotTools`), then its backlog. */
export async function prepareBacklog(
  cluster: EmbeddedCluster,
  spec: WorkloadSpec,
  rows: number,
  slotTools: readonly string[],
): Promise<Backlog> {
  const database = `w_${spec.name.replace(/-/g, '_')}`;
  await createDatabase(cluster, database);
  const client = new pg.Client({ connectionString: cluster.url(database) });
  await client.connect();
  try {
    const changes = spec.changes(rows);
    const publication = `${database}_pub`;
    const slots = new Map(slotTools.map((tool) => [tool, `${database}_${tool.replace(/[^a-z0-9]+/g, '_')}`]));
    await spec.prepare(client, cluster, database);
    const stream = spec.kind === 'stream';
    if (stream) await client.query('create table bench_end (id integer primary key)');
    const published = stream ? [...spec.tables, 'bench_end'] : spec.tables;
    await client.query(`create publication ${publication} for table ${published.join(', ')}`);
    const [first, ...copies] = stream ? [...slots.values()] : [];
    if (first !== undefined) await client.query(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [first]);
    for (const copy of copies) await client.query('select pg_copy_logical_replication_slot($1, $2)', [first, copy]);
    const startLsn = await lsnQuery(client, 'pg_current_wal_lsn');
    const started = performance.now();
    await spec.load(client, cluster, database, changes);
    let threshold = '0/0';
    if (stream) {
      await client.query('begin');
      await client.query('insert into bench_end values (1)');
      threshold = await lsnQuery(client, 'pg_current_wal_insert_lsn');
      await client.query('commit');
    }
    const loadMs = performance.now() - started;
    const endLsn = await lsnQuery(client, 'pg_current_wal_lsn');
    return {
      spec,
      database,
      publication,
      slots,
      expected: changes + (stream ? 1 : 0),
      threshold,
      endLsn,
      walMb: (parseLsn(endLsn) - parseLsn(startLsn)) / 1024 / 1024,
      loadMs,
    };
  } finally {
    await client.end();
  }
}

/** Drops what a workload left in the cluster (its slots retain WAL; its database, disk). */
export async function dropBacklog(cluster: EmbeddedCluster, backlog: Backlog): Promise<void> {
  const admin = new pg.Client({ connectionString: cluster.url('postgres') });
  await admin.connect();
  try {
    await admin.query(
      `select pg_drop_replication_slot(slot_name) from pg_replication_slots where database = $1 and not active`,
      [backlog.database],
    );
    await admin.query(`drop database ${backlog.database} with (force)`);
  } finally {
    await admin.end();
  }
}
