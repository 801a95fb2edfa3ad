/**
 * In-process recovery (lifecycle/supervisor.ts): ONE pgcdc process rides through 20 PostgreSQL
 * immediate restarts, 20 walsender terminations, and a server that is down for 30 s when it starts,
 * under an insert/update/delete workload. Afterwards the replay of every delivered event equals the
 * source, nothing is lost and no event id appears twice. Each iteration prints its detection time
 * (fault -> pgcdc's retry line naming it) and recovery times (fault -> streaming again, fault -> a
 * change made after the fault delivered), then a summary table. Timings are printed, never asserted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { EmbeddedCluster } from '../../src/embedded/cluster.ts';
import { parseConfig } from '../../src/config.ts';
import { createLogger } from '../../src/core/log.ts';
import { superviseCapture } from '../../src/lifecycle/supervisor.ts';
import { startPgcdc, type PgcdcProcess } from '../harness/cli.ts';
import { MemorySink, MemorySinkStore } from '../harness/memory-sink.ts';
import { eventually, freshDatabase, startCluster, testServer } from '../harness/pg.ts';
import { logRecords } from '../harness/process.ts';
import {
  assertRunning,
  caughtUp,
  firstRecordSince,
  isRetryLine,
  markerDelivered,
  printSummary,
  timeRecovery,
  verdict,
  Workload,
  type FaultTiming,
} from '../harness/faults.ts';

const ITERATIONS = Number(process.env.PGCDC_RECOVERY_ITERATIONS ?? 20);
const DATABASE = 'recoverydb';

interface Setup {
  cluster: EmbeddedCluster;
  url: string;
  sql: pg.Client;
  dir: string;
  out: string;
  offsets: string;
}

/** A dedicated cluster (it is restarted) with `acct` (the workload's) and `marker` (post-fault changes). */
async function setUp(): Promise<Setup> {
  await testServer();
  const cluster = await startCluster();
  const admin = new pg.Client({ connectionString: cluster.url('postgres') });
  await admin.connect();
  await admin.query(`create database ${DATABASE}`);
  await admin.end();
  const url = cluster.url(DATABASE);
  const sql = await connect(url);
  await sql.query(`create table acct (id int primary key, balance int not null)`);
  await sql.query(`create table marker (id int primary key)`);
  await sql.query(`insert into acct select g, g from generate_series(1, 200) g`);
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-recovery-'));
  return { cluster, url, sql, dir, out: path.join(dir, 'events'), offsets: path.join(dir, 'offsets.json') };
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined); // the server is restarted on purpose
  await client.connect();
  return client;
}

/** pgcdc with short backoffs (so the table shows recovery, not the default 30 s cap) and a heartbeat. */
async function start(setup: Setup): Promise<PgcdcProcess> {
  const config = path.join(setup.dir, 'pgcdc.yaml');
  await writeFile(
    config,
    [
      'retry:',
      '  initialDelayMs: 100',
      '  maxDelayMs: 1000',
      '  resetAfterMs: 2000',
      '  giveUpAfterMs: 600000',
      'heartbeat:',
      '  interval: 1000',
      '',
    ].join('\n'),
  );
  return startPgcdc([
    'run',
    '--config',
    config,
    '--source',
    setup.url,
    '--slot',
    'recovery_slot',
    '--publication',
    'recovery_pub',
    '--tables',
    'public.acct,public.marker',
    '--out',
    setup.out,
    '--offsets',
    setup.offsets,
    '--log-format',
    'json',
  ]);
}

const topic = (table: string): string => `${DATABASE}.public.${table}`;

/** Stops the workload, lets pgcdc catch up, stops it (exit 0), and checks and prints the result. */
async function finish(
  label: string,
  setup: Setup,
  proc: PgcdcProcess,
  workload: Workload,
  timings: FaultTiming[],
): Promise<void> {
  await workload.stop();
  const sql = await connect(setup.url);
  try {
    await eventually(() => caughtUp(sql, setup.offsets), 'pgcdc caught up with the source', 120_000);
    assertRunning(proc);
    proc.kill('SIGTERM');
    assert.equal(await proc.exited, 0, proc.stderr().slice(-4000));
    const result = await verdict(sql, setup.out, topic('acct'));
    const retries = logRecords(proc.stderr()).filter(isRetryLine).length;
    if (process.env.PGCDC_RECOVERY_LOG !== undefined)
      await writeFile(`${process.env.PGCDC_RECOVERY_LOG}.${label.replace(/\W+/g, '-')}.log`, proc.stderr());
    console.log(
      `${label}: ${workload.committed} workload transactions committed (${workload.failed} failed during faults), ` +
        `${retries} retries logged, ${result.events} events delivered`,
    );
    printSummary(label, timings, result);
    assert.deepEqual(
      { lost: result.lost, extra: result.extra, mismatched: result.mismatched, duplicated: result.duplicated },
      { lost: 0, extra: 0, mismatched: 0, duplicated: 0 },
    );
  } finally {
    await sql.end().catch(() => undefined);
    await setup.sql.end().catch(() => undefined);
  }
}

test(`${ITERATIONS} immediate PostgreSQL restarts: one pgcdc process recovers, none lost or duplicated`, async () => {
  const setup = await setUp();
  const pgcdc = await start(setup);
  let marker = 0;
  await markerDelivered(setup.url, setup.out, topic('marker'), ++marker);
  const workload = new Workload(setup.url);
  const timings: FaultTiming[] = [];
  for (let i = 1; i <= ITERATIONS; i++) {
    assertRunning(pgcdc);
    const t0 = Date.now();
    await setup.cluster.stop('immediate');
    await setup.cluster.restart();
    const n = ++marker;
    timings.push(
      await timeRecovery('restart', i, t0, pgcdc, () => markerDelivered(setup.url, setup.out, topic('marker'), n)),
    );
  }
  await finish('PostgreSQL immediate restart', setup, pgcdc, workload, timings);
});

test(`${ITERATIONS} walsender terminations: one pgcdc process recovers, none lost or duplicated`, async () => {
  const setup = await setUp();
  const pgcdc = await start(setup);
  let marker = 0;
  await markerDelivered(setup.url, setup.out, topic('marker'), ++marker);
  const workload = new Workload(setup.url);
  const timings: FaultTiming[] = [];
  for (let i = 1; i <= ITERATIONS; i++) {
    assertRunning(pgcdc);
    // The walsender of this stream: the slot is active again after the last recovery.
    const pid = await eventually(async () => {
      const { rows } = await setup.sql.query<{ pid: number | null }>(
        `select active_pid as pid from pg_replication_slots where slot_name = 'recovery_slot'`,
      );
      return rows[0]?.pid ?? undefined;
    }, 'an active walsender');
    const t0 = Date.now();
    await setup.sql.query(`select pg_terminate_backend($1)`, [pid]);
    const n = ++marker;
    timings.push(
      await timeRecovery('terminate', i, t0, pgcdc, () => markerDelivered(setup.url, setup.out, topic('marker'), n)),
    );
  }
  await finish('walsender terminated', setup, pgcdc, workload, timings);
});

test('a server that is down for 30 s when pgcdc starts: pgcdc waits, then captures everything', async () => {
  const setup = await setUp();
  await setup.sql.end();
  await setup.cluster.stop('fast');
  const t0 = Date.now();
  const pgcdc = await start(setup);
  // The fault's duration, not a wait for a state: the server stays down for 30 s.
  await new Promise((resolve) => setTimeout(resolve, 30_000));
  assertRunning(pgcdc);
  const retries = logRecords(pgcdc.stderr()).filter(isRetryLine);
  assert.ok(retries.length > 0, 'pgcdc logged its retries while the server was down');
  assert.ok(
    retries.every((r) => r.code === 'CONNECTION_LOST'),
    `every retry names the refused connection: ${JSON.stringify(retries.slice(0, 3))}`,
  );
  const up = Date.now();
  await setup.cluster.restart();
  setup.sql = await connect(setup.url);
  const workload = new Workload(setup.url);
  const delivered = await markerDelivered(setup.url, setup.out, topic('marker'), 1);
  const first = firstRecordSince(pgcdc, t0, isRetryLine);
  const streaming = await eventually(() => firstRecordSince(pgcdc, up, (r) => r.msg === 'streaming'), 'streaming');
  const timing: FaultTiming = {
    iteration: 1,
    detectionMs: Number(first?.time) - t0,
    streamingMs: Number(streaming.time) - up,
    deliveredMs: delivered - up,
    code: String(first?.code),
  };
  console.log(
    `down at start: first retry line ${timing.detectionMs} ms after spawning pgcdc (Node start-up included; ` +
      `${timing.code}), ${retries.length} retries in the 30 s; after the server came up: streaming in ` +
      `${timing.streamingMs} ms, a change made after it came up delivered in ${timing.deliveredMs} ms (by the ` +
      `initial snapshot or the stream)`,
  );
  await finish('down for 30 s at start (times from the server coming up)', setup, pgcdc, workload, [timing]);
});

test('SIGTERM while pgcdc is retrying (server down) stops it cleanly with exit 0', async () => {
  const setup = await setUp();
  await setup.sql.end();
  await setup.cluster.stop('fast');
  const pgcdc = await start(setup);
  await eventually(() => (logRecords(pgcdc.stderr()).some(isRetryLine) ? true : undefined), 'a retry line');
  const t0 = Date.now();
  pgcdc.kill('SIGTERM');
  assert.equal(await pgcdc.exited, 0, pgcdc.stderr().slice(-4000));
  console.log(`SIGTERM in a backoff: exited 0 after ${Date.now() - t0} ms`);
  assert.doesNotMatch(pgcdc.stderr(), /postgres:\/\//, 'never the connection string');
  assert.ok(!pgcdc.stderr().includes(`:${setup.cluster.password}@`), 'never the password');
});

test('a stalled sink: the stop is bounded by shutdown.timeoutMs, nothing past the durable is confirmed', async () => {
  const db = await freshDatabase();
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-stall-'));
  await db.sql.query(`create table t (id int primary key)`);
  const slot = `stall_${db.name}`;
  const config = parseConfig({
    source: { url: db.url },
    slot,
    publication: 'stall_pub',
    tables: ['public.t'],
    offsets: path.join(dir, 'offsets.json'),
    heartbeat: { interval: 200 },
    statusIntervalMs: 100,
    shutdown: { timeoutMs: 2000 },
    log: { level: 'warn', format: 'json' },
  });
  const store = new MemorySinkStore();
  let sink: MemorySink | undefined;
  const run = superviseCapture(config, () => (sink = new MemorySink({ store })), createLogger(config.log));
  await db.sql.query(`insert into t values (1)`);
  await store.waitForEvents(1);
  const stall = (sink as MemorySink).stallWrites();
  const { rows } = await db.sql.query<{ lsn: string }>(`select pg_current_wal_lsn()::text as lsn`);
  const beforeStalled = rows[0]?.lsn ?? '0/0';
  await db.sql.query(`insert into t values (2)`);
  await stall.reached;
  const t0 = Date.now();
  assert.equal(await run.supervisor.stop(), false, 'the stop gives up at the bound');
  console.log(`stalled sink: stop() gave up after ${Date.now() - t0} ms (shutdown.timeoutMs 2000)`);
  const { rows: slots } = await db.sql.query<{ ok: boolean }>(
    `select confirmed_flush_lsn <= $1::pg_lsn as ok from pg_replication_slots where slot_name = $2`,
    [beforeStalled, slot],
  );
  assert.equal(slots[0]?.ok, true, 'the slot never confirmed the stalled transaction');
  assert.deepEqual(
    store.events.map((e) => (JSON.parse(e.line) as { key: { id: number } }).key.id),
    [1],
  );
  // Released, the stop that was under way finishes cleanly (and the test leaves nothing running).
  stall.release();
  await run.supervisor.done;
});
