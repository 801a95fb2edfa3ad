/**
 * nats-server SIGKILLed for 20 s while pgcdc delivers a steady workload, then restarted on the same
 * port with the same store: pgcdc does not exit (the dropped connection is a retryable sink failure;
 * the supervisor restarts the capture with backoff while the server is down), the slot's
 * confirmed_flush_lsn does not move while NATS is down (nothing is acknowledged that the stream did
 * not store), pgcdc's memory stays bounded (nothing is read from PostgreSQL while no sink opens),
 * and afterwards everything arrives: the replay of the stream equals the source, no event id twice.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import { lsnValue, startPgcdc } from '../harness/cli.ts';
import { natsAvailable, natsForFile } from '../harness/nats.ts';
import { natsRunArgs, natsVerdict, slotOf, writeRunConfig } from '../harness/nats-workload.ts';
import { eventually, freshDatabase, onTeardown, requireOrSkip, type TestDatabase } from '../harness/pg.ts';
import { logRecords, peakRssMb, type LogRecord } from '../harness/process.ts';

const skip = requireOrSkip(natsAvailable(), 'nats-server');

/** How long the server stays down: the fault's duration (the 20 s), not a wait for state. */
const OUTAGE_MS = 20_000;
/** Pace of the workload: one source transaction, then this pause. A load rate, not a wait for state. */
const WORKLOAD_PAUSE_MS = 20;
/** Bytes of filler per row, so the outage's backlog is megabytes of WAL rather than kilobytes. */
const ROW_PAD = 400;

const nats = natsForFile();

/** Inserts, updates and deletes on `acct`, one transaction after another on a connection of its own. */
class Workload {
  transactions = 0;
  private nextId = 1;
  private running = true;
  private readonly client: pg.Client;
  readonly done: Promise<void>;

  constructor(db: TestDatabase) {
    this.client = new pg.Client({ connectionString: db.url });
    onTeardown(() => this.stop());
    this.done = this.client.connect().then(() => this.loop());
    this.done.catch(() => undefined);
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const first = this.nextId;
      this.nextId += 20;
      const last = first + 19;
      await this.client.query(
        `begin;
         insert into acct select g, g, repeat('x', ${ROW_PAD}) from generate_series(${first}, ${last}) g;
         update acct set balance = balance + 1 where id between ${first - 60} and ${last} and id % 3 = 0;
         delete from acct where id between ${first - 200} and ${first - 181} and id % 4 = 0;
         commit`,
      );
      this.transactions++;
      await delay(WORKLOAD_PAUSE_MS);
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
    await this.client.end().catch(() => undefined);
  }
}

async function slotConfirmed(db: TestDatabase): Promise<string> {
  const { rows } = await db.sql.query<{ lsn: string | null }>(
    `select confirmed_flush_lsn::text as lsn from pg_replication_slots where slot_name = $1`,
    [slotOf(db)],
  );
  const lsn = rows[0]?.lsn;
  if (lsn === undefined || lsn === null) throw new Error('no slot yet');
  return lsn;
}

async function walNow(db: TestDatabase): Promise<string> {
  const { rows } = await db.sql.query<{ lsn: string }>(`select pg_current_wal_insert_lsn()::text as lsn`);
  return rows[0]?.lsn ?? '0/0';
}

/** Waits until the slot's confirmed LSN is at or past `lsn`: every change before it is in the stream. */
function confirmedPast(db: TestDatabase, lsn: string, what: string, timeoutMs = 180_000): Promise<string> {
  return eventually(
    async () => {
      const confirmed = await slotConfirmed(db).catch(() => '0/0');
      return lsnValue(confirmed) >= lsnValue(lsn) ? confirmed : undefined;
    },
    what,
    timeoutMs,
  );
}

/** Resident set size of a running process now, in MB. */
/** A supervisor's retry line (lifecycle/supervisor.ts): the failed capture was torn down. */
function isRetry(record: LogRecord): boolean {
  return record.level === 40 && typeof record.retry === 'number';
}

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) / 1024 : NaN;
}

test(
  'nats-server killed for 20 s: pgcdc waits with bounded memory, acknowledges nothing, then delivers all',
  { skip },
  async (t) => {
    const server = await nats();
    const db = await freshDatabase();
    await db.sql.query(`create table acct (id int primary key, balance int not null, pad text)`);
    await db.sql.query(`insert into acct select g, g, '' from generate_series(-100, 0) g`);
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-nats-outage-'));
    // The default backoff grows to 30 s: a server back after 20 s would wait up to that long again.
    const config = await writeRunConfig(dir);
    const pgcdc = startPgcdc(
      natsRunArgs({
        db,
        url: server.url,
        offsets: path.join(dir, 'offsets.json'),
        config,
        extra: ['--retry-max-delay', '4000'],
      }),
    );
    await eventually(() => slotConfirmed(db).catch(() => undefined), 'the slot to be created', 120_000);
    const workload = new Workload(db);
    const startedAt = workload.transactions;
    await eventually(() => (workload.transactions >= startedAt + 20 ? true : undefined), 'the workload to commit');
    await confirmedPast(db, await walNow(db), 'delivery under the workload');
    const logBefore = pgcdc.stderr().length;

    await server.kill();
    const downAt = Date.now();
    // A batch JetStream acknowledged just before the kill is durable, and its checkpoint may still be
    // confirmed a moment after: the baseline is the slot once the capture stopped on the failure (its
    // first retry line). Had pgcdc confirmed anything JetStream did not hold, the replay below would
    // show it lost: a restart resumes after the confirmed position.
    await eventually(
      () => (logRecords(pgcdc.stderr().slice(logBefore)).some(isRetry) ? true : undefined),
      'the sink failure retried',
    );
    const confirmedAtStop = await slotConfirmed(db);
    const walAtStop = await walNow(db);
    // The fault lasts OUTAGE_MS; meanwhile the workload goes on and the slot is watched.
    const seen = new Set<string>();
    let outageRss = 0;
    while (Date.now() - downAt < OUTAGE_MS) {
      seen.add(await slotConfirmed(db));
      outageRss = Math.max(outageRss, await rssMb(pgcdc.child.pid ?? 0));
      assert.equal(pgcdc.child.exitCode, null, `pgcdc exited while NATS was down: ${pgcdc.stderr().slice(-3000)}`);
      await delay(250);
    }
    const walAtRestart = await walNow(db);
    const transactionsDuring = workload.transactions;
    await server.restart();
    const upAt = Date.now();
    const outageLog = logRecords(pgcdc.stderr().slice(logBefore));
    await confirmedPast(db, walAtRestart, 'the backlog of the outage delivered');
    const caughtUpMs = Date.now() - upAt;
    await workload.stop();
    await confirmedPast(db, await walNow(db), 'every change confirmed');
    const peak = await peakRssMb(pgcdc.child.pid ?? 0);
    pgcdc.kill('SIGTERM');
    assert.equal(await pgcdc.exited, 0, pgcdc.stderr().slice(-3000));

    const verdict = await natsVerdict(server, db);
    const retries = outageLog.filter(isRetry);
    t.diagnostic(
      `nats outage: ${upAt - downAt} ms down (killed to JetStream answering again), ` +
        `${(lsnValue(walAtRestart) - lsnValue(walAtStop)) / 1024n} KiB of WAL written meanwhile ` +
        `(${transactionsDuring} source transactions in the test); ${retries.length} retries ` +
        `(${[...new Set(retries.map((r) => String(r.code)))].join(', ')}); caught up ${caughtUpMs} ms after the ` +
        `restart; peak RSS ${peak.toFixed(0)} MB (${outageRss.toFixed(0)} MB at most during the outage); confirmed ` +
        `LSN during the outage: ${[...seen].join(', ')}; ${verdict.events} messages; lost ${verdict.lost}, ` +
        `extra ${verdict.extra}, mismatched ${verdict.mismatched}, duplicates ${verdict.duplicated}`,
    );
    assert.deepEqual([...seen], [confirmedAtStop], 'the confirmed LSN does not move while NATS is down');
    assert.ok(retries.length > 0, 'the dropped connection was retried');
    // Bounded, not proportional to the outage: while NATS is down every start-up fails before the
    // replication connection opens, so nothing is read; catching up, Delivery buffers a bounded
    // amount of events (pipeline/delivery.ts) over Node's and tsx's ~150 MB.
    assert.ok(peak < 450, `peak RSS ${peak.toFixed(0)} MB`);
    assert.deepEqual(
      { lost: verdict.lost, extra: verdict.extra, mismatched: verdict.mismatched, duplicated: verdict.duplicated },
      { lost: 0, extra: 0, mismatched: 0, duplicated: 0 },
    );
  },
);
