/**
 * A gate in front of a table's readers, for tests that must stop pgcdc in the middle of reading a
 * table (a snapshot chunk at a time) whatever the speed of pgcdc, the server and the test.
 *
 * Two sessions take turns holding ACCESS EXCLUSIVE on the table, which every read waits for. To let
 * one read through, the idle session queues its own LOCK behind the waiting read and the holder
 * commits: PostgreSQL grants queued locks in order, so the waiting read runs (one statement, or one
 * transaction when it is inside one: a chunk of an incremental snapshot) and the reader's next
 * statement queues behind the new holder. While the reader waits, pgcdc cannot read on.
 *
 * Only for readers that release the table between reads (incremental snapshots, whose chunks are
 * one transaction each); the initial snapshot reads every chunk in one transaction.
 */
import pg from 'pg';
import { eventually, onTeardown, type TestDatabase } from './pg.ts';

export class ReadGate {
  private holder: pg.Client;
  private idle: pg.Client;
  private readonly sql: pg.Client;
  private readonly table: string;

  private constructor(holder: pg.Client, idle: pg.Client, sql: pg.Client, table: string) {
    this.holder = holder;
    this.idle = idle;
    this.sql = sql;
    this.table = table;
  }

  /** Closes the gate on `table` (a name as SQL takes it): from now on every read of it waits. */
  static async close(db: TestDatabase, table: string): Promise<ReadGate> {
    const open = async (): Promise<pg.Client> => {
      const client = new pg.Client({ connectionString: db.url });
      client.on('error', () => undefined);
      await client.connect();
      // Ending a session in a transaction rolls it back: the lock goes with it.
      onTeardown(() => client.end().catch(() => undefined));
      return client;
    };
    const gate = new ReadGate(await open(), await open(), db.sql, table);
    await gate.holder.query(`begin; lock table ${table} in access exclusive mode`);
    return gate;
  }

  /** Sessions waiting for a lock on the table. */
  private async waiting(): Promise<number> {
    const { rows } = await this.sql.query<{ n: number }>(
      `select count(*)::int as n from pg_locks where locktype = 'relation' and relation = $1::regclass and not granted`,
      [this.table],
    );
    return rows[0]?.n ?? 0;
  }

  /** Resolves once a reader waits at the gate: until it is let through, it reads nothing more. */
  async readerWaiting(): Promise<void> {
    await eventually(
      async () => ((await this.waiting()) >= 1 ? true : undefined),
      `a reader of ${this.table} waiting at the gate`,
    );
  }

  /** Lets the waiting reader through for one statement or transaction; the gate is closed again after it. */
  async letOneThrough(): Promise<void> {
    await this.readerWaiting();
    const next = this.idle.query(`begin; lock table ${this.table} in access exclusive mode`);
    next.catch(() => undefined); // awaited below; not an unhandled rejection should a wait fail first
    // Queued behind the reader (both wait for the holder)...
    await eventually(
      async () => ((await this.waiting()) >= 2 ? true : undefined),
      `the next holder queued behind the reader of ${this.table}`,
    );
    // ...so the reader goes first, and the next holder closes the gate once the reader is done.
    await this.holder.query('commit');
    await next;
    [this.holder, this.idle] = [this.idle, this.holder];
  }

  /** Opens the gate for good. */
  async open(): Promise<void> {
    await this.holder.query('commit');
  }
}
