/**
 * For the sink benches (kafka.ts, sinks.ts): the narrow-insert backlog. `rows` inserts into
 * `bench (id bigint primary key, v integer, t text)` committed in transactions of `txSize`, written
 * after one slot per run was created at the same LSN, so every run streams the same backlog.
 */
import pg from 'pg';
import type { EmbeddedCluster } from '../src/embedded/cluster.ts';

export interface NarrowBacklog {
  readonly publication: string;
  readonly tables: string;
  /** An LSN inside the last transaction: a checkpoint at or past it covers every row. */
  readonly threshold: string;
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

export async function loadNarrow(
  cluster: EmbeddedCluster,
  database: string,
  rows: number,
  txSize: number,
  slots: readonly string[],
): Promise<NarrowBacklog> {
  const client = new pg.Client({ connectionString: cluster.url(database) });
  await client.connect();
  try {
    await client.query('create table bench (id bigint primary key, v integer not null, t text not null)');
    await client.query('create publication bench_pub for table bench');
    const [first, ...others] = slots;
    if (first === undefined) throw new Error('loadNarrow: no slot to create');
    await client.query(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [first]);
    for (const slot of others) await client.query(`select pg_copy_logical_replication_slot($1, $2)`, [first, slot]);
    const started = performance.now();
    let threshold = '0/0';
    for (let from = 1; from <= rows; from += txSize) {
      const last = Math.min(rows, from + txSize - 1);
      await client.query('begin');
      await client.query(
        `insert into bench select g, (g * 7919) % 1000003, substr(md5(g::text), 1, 8) from ` +
          `generate_series($1::bigint, $2::bigint) g`,
        [from, last],
      );
      if (last === rows)
        threshold = (await client.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn')).rows[0]!
          .lsn;
      await client.query('commit');
    }
    console.log(
      `narrow: ${rows.toLocaleString('en-US')} inserts in transactions of ${txSize}, loaded in ` +
        seconds(performance.now() - started),
    );
    return { publication: 'bench_pub', tables: 'public.bench', threshold };
  } finally {
    await client.end();
  }
}
