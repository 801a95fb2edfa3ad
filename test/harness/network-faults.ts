/**
 * The pieces of the network-fault tests (test/integration/network-faults.test.ts): a cluster with a
 * short wal_sender_timeout behind a TcpProxy, a database with a workload of inserts, updates and
 * deletes, pgcdc pointed at the proxy, markers to see what was delivered, and the final verdict by
 * replay. Times are measured and printed, never asserted.
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { eventually, freshDatabase, onTeardown, startCluster, type TestDatabase } from './pg.ts';
import { TcpProxy } from './tcp-proxy.ts';
import { compareRows, readJsonl, replay, startPgcdc, type PgcdcProcess } from './cli.ts';

/** Liveness settings of these tests: the server's wal_sender_timeout and pgcdc's query limit. */
export const WAL_SENDER_TIMEOUT = '5s';
export const STATEMENT_TIMEOUT_MS = 5000;

export interface FaultBench {
  readonly db: TestDatabase;
  readonly proxy: TcpProxy;
  readonly dir: string;
  readonly slot: string;
  /** pgcdc's arguments, through the proxy. */
  readonly args: string[];
}

export async function faultBench(): Promise<FaultBench> {
  const cluster = await startCluster({ settings: { wal_sender_timeout: WAL_SENDER_TIMEOUT } });
  const db = await freshDatabase({ major: cluster.major, url: (d) => cluster.url(d), cluster });
  await db.sql.query('create table acct (id int primary key, balance int not null)');
  await db.sql.query('create table marker (id int primary key, note text not null)');
  const proxy = await TcpProxy.start({ host: '127.0.0.1', port: cluster.port });
  onTeardown(() => proxy.close());
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-netfault-'));
  const config = path.join(dir, 'pgcdc.yaml');
  // Faults follow each other closely here: without a short healthy stretch (resetAfterMs) they would
  // make one outage that hits the give-up time; the backoff is capped low so recovery times show pgcdc,
  // not the wait between attempts.
  await writeFile(
    config,
    `source:\n  statementTimeoutMs: ${STATEMENT_TIMEOUT_MS}\n` +
      'retry:\n  giveUpAfterMs: 3600000\n  resetAfterMs: 5000\n  maxDelayMs: 5000\n',
  );
  const slot = `s_${db.name}`;
  const args = [
    'run',
    '--config',
    config,
    '--source',
    proxy.url(db.url),
    '--slot',
    slot,
    '--publication',
    'netfault_pub',
    '--tables',
    'public.acct,public.marker',
    '--out',
    path.join(dir, 'events'),
    '--offsets',
    path.join(dir, 'offsets.json'),
    '--log-format',
    'json',
  ];
  return { db, proxy, dir, slot, args };
}

/** pgcdc through the proxy; `retry: false` makes the first fault final (`--retry-give-up-after 0`). */
export function startThroughProxy(bench: FaultBench, retry = true): PgcdcProcess {
  return startPgcdc(retry ? bench.args : [...bench.args, '--retry-give-up-after', '0']);
}

/**
 * Inserts, updates and deletes on `acct` over a direct connection (never through the proxy), one
 * small transaction at a time, paced so the shared machine is not saturated, until stopped.
 */
export class Workload {
  private readonly client: pg.Client;
  private running = true;
  private readonly done: Promise<void>;
  operations = 0;

  private constructor(client: pg.Client) {
    this.client = client;
    this.done = this.loop();
  }

  static async start(db: TestDatabase): Promise<Workload> {
    const client = new pg.Client({ connectionString: db.url });
    client.on('error', () => undefined);
    await client.connect();
    onTeardown(() => client.end().catch(() => undefined));
    return new Workload(client);
  }

  /** The error that ended the workload early, if any (the test's teardown closed its connection, say). */
  failure: Error | undefined;

  private async loop(): Promise<void> {
    try {
      await this.steps();
    } catch (error) {
      this.failure = error instanceof Error ? error : new Error(String(error));
    }
  }

  private async steps(): Promise<void> {
    let step = 0;
    while (this.running) {
      step++;
      const id = 1 + ((step * 7919) % 400);
      const op = step % 5;
      if (op === 4) await this.client.query('delete from acct where id = $1', [id]);
      else
        await this.client.query(
          'insert into acct (id, balance) values ($1, $2) on conflict (id) do update set balance = excluded.balance',
          [id, step],
        );
      this.operations++;
      // The pace of the workload (about 50 transactions a second), not a wait for some state.
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Stops the workload; throws when it had failed (its changes would then be incomplete). */
  async stop(): Promise<void> {
    this.running = false;
    await this.done;
    await this.client.end().catch(() => undefined);
    if (this.failure !== undefined) throw this.failure;
  }
}

let markers = 0;

/**
 * Inserts a marker row (directly) and resolves once pgcdc delivered it, with the time that took.
 * Fails at once, with pgcdc's last words, when `proc` has exited meanwhile.
 */
export async function markerDelivered(bench: FaultBench, proc: PgcdcProcess, timeoutMs = 600_000): Promise<number> {
  const id = ++markers;
  const started = Date.now();
  await bench.db.sql.query('insert into marker values ($1, $2)', [id, `marker ${id}`]);
  // Only the marker topic's file: the acct file grows with the workload and is read once, at the end.
  const file = path.join(bench.dir, 'events', `${bench.db.name}.public.marker.jsonl`);
  const needle = `"key":{"id":${id}}`;
  await eventually(
    async () => {
      if (proc.child.exitCode !== null || proc.child.signalCode !== null) return 'exited';
      const text = await readFile(file, 'utf8').catch(() => '');
      return text.includes(needle) ? 'delivered' : undefined;
    },
    `marker ${id} delivered`,
    timeoutMs,
  ).then((outcome) => {
    if (outcome === 'exited')
      throw new Error(`pgcdc exited (${proc.child.exitCode}) before marker ${id}: ${proc.stderr().slice(-2000)}`);
  });
  return Date.now() - started;
}

/** Resolves with the first new stderr line from `offset` on that matches `pattern`, and when it was seen. */
export async function lineAfter(
  proc: PgcdcProcess,
  offset: number,
  pattern: RegExp,
  what: string,
  timeoutMs = 600_000,
): Promise<{ line: string; at: number }> {
  return eventually(
    () => {
      const line = proc
        .stderr()
        .slice(offset)
        .split('\n')
        .find((l) => pattern.test(l));
      return line === undefined ? undefined : { line, at: Date.now() };
    },
    what,
    timeoutMs,
  );
}

/** The slot is free again (its walsender ended): a new pgcdc can take it. */
export async function slotInactive(bench: FaultBench): Promise<void> {
  await eventually(
    async () =>
      (await bench.db.sql.query('select 1 from pg_replication_slots where slot_name = $1 and active', [bench.slot]))
        .rowCount === 0
        ? true
        : undefined,
    'the slot to be released',
  );
}

export interface Verdict {
  readonly events: number;
  readonly lost: number;
  readonly extra: number;
  readonly mismatched: number;
  readonly duplicated: number;
}

/** Replays everything pgcdc wrote onto empty tables and compares with the source's `acct`. */
export async function verdict(bench: FaultBench): Promise<Verdict> {
  const events = await readJsonl(path.join(bench.dir, 'events'));
  const replayed = replay(events);
  // id and balance only: the columns the catalog faults add (always null) are absent from the events of
  // rows not changed since.
  const { rows } = await bench.db.sql.query<Record<string, unknown>>('select id, balance from acct');
  const source = new Map(rows.map((r) => [JSON.stringify({ id: r.id }), r]));
  const projected = new Map<string, Record<string, unknown>>();
  for (const [key, row] of replayed.tables.get(`${bench.db.name}.public.acct`) ?? [])
    projected.set(key, { id: row.id, balance: row.balance });
  const compared = compareRows(projected, source);
  return { events: events.length, ...compared, duplicated: replayed.duplicates };
}

/** A line of the summary table. */
export interface FaultRow {
  readonly fault: string;
  readonly iteration: number;
  readonly detectionMs: number | undefined;
  readonly recoveryMs: number | undefined;
  readonly cause: string;
}

/** The fault table, as lines for t.diagnostic. */
export function faultTable(rows: readonly FaultRow[]): string[] {
  const out = ['fault                   | iter | detection s | recovery s | cause'];
  for (const row of rows) {
    const s = (ms: number | undefined): string => (ms === undefined ? '-' : (ms / 1000).toFixed(1));
    out.push(
      `${row.fault.padEnd(23)} | ${String(row.iteration).padStart(4)} | ${s(row.detectionMs).padStart(11)} | ` +
        `${s(row.recoveryMs).padStart(10)} | ${row.cause}`,
    );
  }
  return out;
}

/** The error code a pgcdc log or error line names. */
export function causeOf(line: string): string {
  return (
    /SOURCE_TIMEOUT|CONNECTION_LOST|REPLICATION_STREAM_FAILED|CONNECT_FAILED|SOURCE_QUERY_FAILED/.exec(line)?.[0] ?? '?'
  );
}
