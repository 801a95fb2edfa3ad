/** For bench/kafka.ts: a pgbench tpcb mix as the captured workload. */
import pg from 'pg';
import type { EmbeddedCluster } from '../src/embedded/cluster.ts';
import type { Delivery } from './pgcdc-process.ts';
import { pgbench } from './pgbench.ts';

/**
 * `pgbench -i` (scale 1; pgbench_history gets REPLICA IDENTITY FULL, its records have a null key), then
 * two slots at the same LSN, then `pgbench -n -c clients -t tx` (each transaction: 3 updates, 1 insert
 * into pgbench_history), then one marker row whose transaction is the last: a checkpoint past it covers
 * the whole run.
 */
export async function loadPgbench(
  cluster: EmbeddedCluster,
  database: string,
  clients: number,
  transactions: number,
): Promise<{
  name: string;
  database: string;
  publication: string;
  tables: string;
  slot: (mode: Delivery) => string;
  threshold: string;
  expected: number;
}> {
  await pgbench(cluster, database, ['-i', '-q', '-s', '1']);
  const client = new pg.Client({ connectionString: cluster.url(database) });
  await client.connect();
  // No primary key (pgbench's own schema): pgcdc refuses a published table whose updates would fail.
  await client.query('alter table pgbench_history replica identity full');
  await client.query('create table bench_end (id integer primary key)');
  await client.query(
    'create publication pgb_pub for table pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history, ' +
      'bench_end',
  );
  await client.query(`select pg_create_logical_replication_slot('pgb_eo', 'pgoutput')`);
  await client.query(`select pg_copy_logical_replication_slot('pgb_eo', 'pgb_alo')`);
  const started = performance.now();
  const report = await pgbench(cluster, database, ['-n', '-c', String(clients), '-j', '1', '-t', String(transactions)]);
  const tps = /tps = ([\d.]+)/.exec(report)?.[1] ?? '?';
  await client.query('begin');
  await client.query('insert into bench_end values (1)');
  const threshold = (await client.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn')).rows[0]
    ?.lsn;
  await client.query('commit');
  await client.end();
  if (threshold === undefined) throw new Error('no LSN');
  const total = clients * transactions;
  console.log(
    `pgbench: ${total.toLocaleString('en-US')} tpcb transactions (${clients} clients), ` +
      `${(total * 4).toLocaleString('en-US')} changes, ran in ` +
      `${((performance.now() - started) / 1000).toFixed(2)} s (${tps} tps)`,
  );
  return {
    name: 'pgbench',
    database,
    publication: 'pgb_pub',
    tables: 'public.*',
    slot: (mode) => (mode === 'exactly-once' ? 'pgb_eo' : 'pgb_alo'),
    threshold,
    expected: total * 4 + 1,
  };
}
