/**
 * The bench every chaos scenario runs on: a dedicated embedded cluster, a database loaded by
 * pgbench (test/harness/pgbench.ts: the tpcb-like mix from 4 connections) plus the keyed
 * insert/update/delete Workload of test/harness/faults.ts on `acct` (pgbench never deletes), one
 * `pgcdc run` kept alive the way a service manager does (started again whenever it exits), markers
 * that prove a change made after a fault was delivered, and the final verdict: every event the sink
 * holds replayed onto empty maps and compared with the source tables, key by key.
 */
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { EmbeddedCluster } from '../../src/embedded/cluster.ts';
import { readCheckpoint } from '../../src/offsets/file.ts';
import { readJsonl, replay, startPgcdc, type DeliveredEvent, type PgcdcProcess } from '../harness/cli.ts';
import { Workload } from '../harness/faults.ts';
import { eventually, freshDatabase, startCluster, type TestDatabase } from '../harness/pg.ts';
import { initPgbench, PgbenchLoad } from '../harness/pgbench.ts';
import { logRecords } from '../harness/process.ts';
import { snapshotPending } from '../harness/snapshots.ts';
import { jetstreamManager } from '@nats-io/jetstream';
import { natsEvents, NatsServer } from '../harness/nats.ts';
import { TcpProxy } from '../harness/tcp-proxy.ts';

/** The captured tables, their key and the columns compared (numbers only: no clock or padding). */
export const TABLES = [
  { table: 'pgbench_accounts', key: 'aid', columns: ['aid', 'bid', 'abalance'] },
  { table: 'pgbench_tellers', key: 'tid', columns: ['tid', 'bid', 'tbalance'] },
  { table: 'pgbench_branches', key: 'bid', columns: ['bid', 'bbalance'] },
  { table: 'pgbench_history', key: 'hid', columns: ['hid', 'tid', 'bid', 'aid', 'delta'] },
  { table: 'acct', key: 'id', columns: ['id', 'balance'] },
] as const;

export interface BenchOptions {
  /** Where the events go: JSONL files (default) or a NATS JetStream stream. */
  readonly sink?: 'jsonl' | 'nats';
  /** pgcdc reaches PostgreSQL through a loopback TcpProxy. */
  readonly proxy?: boolean;
  /** The JSONL directory (a small file system for disk-full); default `<dir>/events`. */
  readonly out?: string;
  /** More `pgcdc run` arguments. */
  readonly extra?: readonly string[];
}

export interface Verdict {
  lost: number;
  extra: number;
  /** Extra rows explained by the fault (slot-loss: deleted while no slot kept the WAL). */
  expectedExtra: number;
  mismatched: number;
  duplicated: number;
  events: number;
  /** The first few differences, `<table> <key>: lost|extra|source <row> / replayed <row>`, for a report. */
  samples: string[];
}

export class ChaosBench {
  /** Every pgcdc process started, the current one last. */
  readonly processes: PgcdcProcess[] = [];
  /** Exits the bench did not cause (the process ended by itself), with their codes. */
  readonly unplannedExits: number[] = [];
  /** The last stderr line of each of those processes (its `pgcdc: error: ...` line). */
  readonly exitLines: string[] = [];
  private plannedKills = 0;
  private stopping = false;
  private markers = 0;
  private pgbench: PgbenchLoad | undefined;
  private workload: Workload | undefined;
  private supervisor: Promise<void> = Promise.resolve();

  private constructor(
    readonly cluster: EmbeddedCluster,
    readonly db: TestDatabase,
    readonly dir: string,
    readonly out: string,
    readonly args: readonly string[],
    readonly proxy: TcpProxy | undefined,
    readonly nats: NatsServer | undefined,
  ) {}

  static async create(options: BenchOptions = {}): Promise<ChaosBench> {
    const cluster = await startCluster({ settings: { wal_sender_timeout: '5s' } });
    const db = await freshDatabase({ major: cluster.major, url: (d) => cluster.url(d), cluster });
    await initPgbench(cluster, db.name, db.sql);
    await db.sql.query(`create table acct (id int primary key, balance int not null)`);
    await db.sql.query(`create table marker (id int primary key)`);
    // When each row of acct was deleted (server clock): slot-loss tells the deletes of its gap apart.
    await db.sql.query(
      `create table acct_deleted (id int not null, at timestamptz not null default clock_timestamp())`,
    );
    await db.sql.query(
      `create function acct_deleted() returns trigger language plpgsql as ` +
        `$$ begin insert into acct_deleted (id) values (old.id); return old; end $$`,
    );
    await db.sql.query(
      `create trigger acct_deleted after delete on acct for each row execute procedure acct_deleted()`,
    );
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-chaos-'));
    const out = options.out ?? path.join(dir, 'events');
    await mkdir(out, { recursive: true });
    const proxy = options.proxy ? await TcpProxy.start({ host: '127.0.0.1', port: cluster.port }) : undefined;
    const nats = options.sink === 'nats' ? await NatsServer.start() : undefined;
    const config = path.join(dir, 'pgcdc.yaml');
    // Short backoff so recovery times show pgcdc rather than the wait between attempts; a long
    // give-up time, since a scenario's faults follow each other closely; a statement timeout for
    // half-open connections (the replication stream has wal_sender_timeout and keepalives).
    await writeFile(
      config,
      'source:\n  statementTimeoutMs: 5000\n' +
        'retry:\n  initialDelayMs: 100\n  maxDelayMs: 1000\n  resetAfterMs: 2000\n  giveUpAfterMs: 3600000\n' +
        'heartbeat:\n  interval: 1000\n',
    );
    const tables = [...TABLES.map((t) => `public.${t.table}`), 'public.marker'].join(',');
    const sink = nats ? ['--sink', 'nats', '--nats-url', nats.url, '--topic-prefix', db.name] : ['--out', out];
    // prettier-ignore
    const args = [
      'run', '--config', config, '--source', proxy ? proxy.url(db.url) : db.url, '--slot', `s_${db.name}`,
      '--publication', `p_${db.name}`, '--tables', tables, ...sink, '--offsets', path.join(dir, 'offsets.json'),
      '--log-format', 'json', ...(options.extra ?? []),
    ];
    return new ChaosBench(cluster, db, dir, out, args, proxy, nats);
  }

  get slot(): string {
    return `s_${this.db.name}`;
  }

  /** The stream pgcdc creates (sink.stream.name's default: `pgcdc-<topic prefix>`). */
  get natsStream(): string {
    return `pgcdc-${this.db.name}`;
  }

  get current(): PgcdcProcess {
    const proc = this.processes.at(-1);
    if (!proc) throw new Error('pgcdc was not started');
    return proc;
  }

  /** Starts pgcdc, kept running until `finish`, then the loads once it streams. */
  async start(): Promise<void> {
    this.launch();
    await this.streamingSince(0, 300_000);
    this.pgbench = new PgbenchLoad(this.cluster, this.db.name);
    this.workload = new Workload(this.db.url, 40);
  }

  private launch(): void {
    const proc = startPgcdc([...this.args]);
    this.processes.push(proc);
    this.supervisor = proc.exited.then(async (code) => {
      if (this.stopping) return;
      if (this.plannedKills > 0) this.plannedKills--;
      else {
        this.unplannedExits.push(code);
        this.exitLines.push(proc.stderr().trim().split('\n').at(-1) ?? '');
      }
      // As a service manager restarts a unit: after a short pause, not in a tight loop.
      await new Promise((resolve) => setTimeout(resolve, 200));
      if (!this.stopping) this.launch();
    });
  }

  /** SIGKILLs the current pgcdc and waits for it; the supervisor starts the next one. */
  async kill(): Promise<void> {
    const proc = this.current;
    this.plannedKills++;
    proc.kill('SIGKILL');
    await proc.exited;
  }

  /** The time of the first `streaming` log line of any pgcdc at or after `since` (epoch ms). */
  streamingAt(since: number): number | undefined {
    for (const proc of this.processes) {
      const record = logRecords(proc.stderr()).find(
        (r) => r.msg === 'streaming' && typeof r.time === 'number' && r.time >= since,
      );
      if (record) return Number(record.time);
    }
    return undefined;
  }

  /** The time of the last `streaming` log line of any pgcdc within [from, to] (epoch ms). */
  lastStreamingWithin(from: number, to: number): number | undefined {
    let last: number | undefined;
    for (const proc of this.processes)
      for (const r of logRecords(proc.stderr()))
        if (r.msg === 'streaming' && typeof r.time === 'number' && r.time >= from && r.time <= to)
          last = Math.max(last ?? 0, r.time);
    return last;
  }

  /** Waits for a `streaming` line at or after `since`; returns its time. */
  streamingSince(since: number, timeoutMs = 180_000): Promise<number> {
    return eventually(() => this.streamingAt(since), 'pgcdc streaming again', timeoutMs);
  }

  /**
   * Inserts a marker row (retrying while the server comes back) and waits until the sink holds
   * it; resolves with the epoch ms it was seen.
   */
  async markerDelivered(timeoutMs = 300_000): Promise<number> {
    const n = ++this.markers;
    await eventually(
      async () => (await this.query(`insert into marker (id) values ($1) on conflict do nothing`, [n]), true),
      `marker ${n} inserted`,
    );
    const topic = `${this.db.name}.public.marker`;
    return eventually(
      async () => ((await this.markerSeen(topic, n)) ? Date.now() : undefined),
      `marker ${n} delivered`,
      timeoutMs,
    );
  }

  private async markerSeen(topic: string, n: number): Promise<boolean> {
    if (this.nats) {
      // The stream's last message on the marker's subject (`{topic}`): markers are inserted in order.
      return this.nats.with(async (nc) => {
        const jsm = await jetstreamManager(nc);
        const last = await jsm.streams.getMessage(this.natsStream, { last_by_subj: topic }).catch(() => null);
        return last?.string().includes(`"key":{"id":${n}}`) ?? false;
      });
    }
    const text = await readFile(path.join(this.out, `${topic}.jsonl`), 'utf8').catch(() => '');
    return text.includes(`"key":{"id":${n}}`);
  }

  /** Runs one query on a new connection (the server may have restarted since the bench began). */
  async query<R extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<R[]> {
    const client = new pg.Client({ connectionString: this.db.url });
    client.on('error', () => undefined);
    try {
      await client.connect();
      return (await client.query<R>(text, values)).rows;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /** Ids of acct rows deleted (server clock) within one of `windows` (epoch ms). */
  async deletedWithin(windows: readonly (readonly [number, number])[]): Promise<Set<string>> {
    const ids = new Set<string>();
    const rows = await this.query<{ id: number; at: Date }>(`select id, at from acct_deleted`);
    for (const row of rows) {
      const at = row.at.getTime();
      if (windows.some(([from, to]) => at >= from && at <= to)) ids.add(String(row.id));
    }
    return ids;
  }

  /**
   * Resolves once the stored checkpoint has no incremental snapshot table left to read. A lost-slot
   * recovery re-reads online, after streaming resumed: a marker can be delivered before the re-read
   * is over, and the output is whole only once it is (a stop in between continues it on the next start).
   */
  async snapshotsDone(timeoutMs = 300_000): Promise<void> {
    await eventually(
      async () => {
        const stored = await readCheckpoint(path.join(this.dir, 'offsets.json'));
        return stored !== undefined && !snapshotPending(stored) ? true : undefined;
      },
      'the incremental snapshots (a lost-slot recovery) finished',
      timeoutMs,
    );
  }

  /**
   * Stops the loads, waits until a last marker is delivered (everything committed before it is
   * then in the sink) and any recovery re-read is over, stops pgcdc and returns the verdict.
   * `expected` are acct ids whose extra row the fault explains.
   */
  async finish(expected: ReadonlySet<string> = new Set()): Promise<Verdict> {
    await this.pgbench?.stop();
    await this.workload?.stop();
    await this.markerDelivered();
    await this.snapshotsDone();
    this.stopping = true;
    const proc = this.current;
    proc.kill('SIGTERM');
    await proc.exited;
    await this.supervisor;
    const verdict = await this.verdict(await this.events(), expected);
    if (verdict.lost + verdict.extra + verdict.mismatched + verdict.duplicated > 0) await this.keepForensics();
    return verdict;
  }

  /**
   * With PGCDC_CHAOS_KEEP=<directory>, a failed verdict copies the bench's directory (events,
   * offsets) there, with every pgcdc's stderr and the source tables beside it, for a post-mortem.
   */
  private async keepForensics(): Promise<void> {
    const keep = process.env.PGCDC_CHAOS_KEEP;
    if (!keep) return;
    for (const [i, proc] of this.processes.entries())
      await writeFile(path.join(this.dir, `pgcdc-${i}.stderr`), proc.stderr());
    for (const table of [...TABLES.map((t) => t.table), 'acct_deleted']) {
      const rows = await this.query(`select * from ${table}`);
      await writeFile(path.join(this.dir, `source-${table}.jsonl`), rows.map((r) => JSON.stringify(r)).join('\n'));
    }
    const kept = await mkdtemp(path.join(path.resolve(keep), 'chaos-'));
    await cp(this.dir, kept, { recursive: true });
    process.stderr.write(`\n*** chaos: failed verdict, files kept in ${kept} ***\n`);
  }

  private async events(): Promise<DeliveredEvent[]> {
    if (this.nats) return natsEvents(await this.nats.readStream(this.natsStream));
    return readJsonl(this.out);
  }

  private async verdict(events: readonly DeliveredEvent[], expected: ReadonlySet<string>): Promise<Verdict> {
    const { tables, duplicates } = replay(events);
    const result: Verdict = {
      lost: 0,
      extra: 0,
      expectedExtra: 0,
      mismatched: 0,
      duplicated: duplicates,
      events: events.length,
      samples: [],
    };
    const sample = (line: string): void => void (result.samples.length < 10 && result.samples.push(line));
    for (const spec of TABLES) {
      // Numbers only; int8 may come as a string from either side, so both are compared as text.
      const text = (v: unknown): string | null =>
        typeof v === 'number' || typeof v === 'string' || typeof v === 'bigint' ? String(v) : null;
      const project = (row: Record<string, unknown>): string => JSON.stringify(spec.columns.map((c) => text(row[c])));
      const rows = await this.query<Record<string, unknown>>(`select ${spec.columns.join(', ')} from ${spec.table}`);
      const source = new Map(rows.map((r) => [text(r[spec.key]) ?? '', project(r)]));
      const replayed = new Map<string, string>();
      for (const row of tables.get(`${this.db.name}.public.${spec.table}`)?.values() ?? [])
        replayed.set(text(row[spec.key]) ?? '', project(row));
      for (const [key, row] of source) {
        const got = replayed.get(key);
        if (got === undefined) {
          result.lost++;
          sample(`${spec.table} ${key}: lost`);
        } else if (got !== row) {
          result.mismatched++;
          sample(`${spec.table} ${key}: source ${row} / replayed ${got}`);
        }
      }
      for (const key of replayed.keys()) {
        if (source.has(key)) continue;
        if (spec.table === 'acct' && expected.has(key)) result.expectedExtra++;
        else {
          result.extra++;
          sample(`${spec.table} ${key}: extra`);
        }
      }
    }
    return result;
  }

  /** Stops everything this bench started and removes its files. */
  async close(): Promise<void> {
    this.stopping = true;
    await this.pgbench?.stop().catch(() => undefined);
    await this.workload?.stop().catch(() => undefined);
    for (const proc of this.processes)
      if (proc.child.exitCode === null && proc.child.signalCode === null) proc.kill('SIGKILL');
    await Promise.all(this.processes.map((p) => p.exited));
    await this.proxy?.close().catch(() => undefined);
    await this.nats?.kill().catch(() => undefined);
    await this.db.sql.end().catch(() => undefined);
    await this.cluster.destroy().catch(() => undefined);
    await rm(this.dir, { recursive: true, force: true });
  }
}
