/**
 * Helpers for the NATS tests: the `pgcdc run` arguments for the NATS sink, the verdict of replaying a
 * stream (read back by an ordered consumer, in stream order) onto an empty map against the source
 * table, and a snapshot-plus-workload run through a server (nats.test.ts, nats-tls.test.ts). The slot
 * and run-config helpers are the Kafka tests' (kafka-workload.ts).
 */
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { compareRows, replay, startPgcdc, type PgcdcProcess } from './cli.ts';
import { awaitStreaming, slotCaughtUp, slotOf, writeRunConfig } from './kafka-workload.ts';
import { natsEvents, type NatsServer } from './nats.ts';
import { eventually, freshDatabase, type TestDatabase } from './pg.ts';

export { awaitStreaming, slotCaughtUp, slotConfirmed, slotOf, writeRunConfig } from './kafka-workload.ts';

/** The stream pgcdc creates for `db` (sink.stream.name's default: `pgcdc-<topic prefix>`). */
export const streamOf = (db: TestDatabase): string => `pgcdc-${db.name}`;

/** Options of one pgcdc run on the NATS sink. */
export interface NatsRun {
  db: TestDatabase;
  url: string;
  /** `--offsets`: a file path, or `nats` for none. */
  offsets: string;
  /** Comma-separated `--tables`. */
  tables?: string;
  /** A YAML configuration file. */
  config?: string;
  extra?: readonly string[];
}

export function natsRunArgs(run: NatsRun): string[] {
  return [
    'run',
    '--source',
    run.db.url,
    '--slot',
    slotOf(run.db),
    '--publication',
    'it_pub',
    '--tables',
    run.tables ?? 'public.*',
    '--sink',
    'nats',
    '--nats-url',
    run.url,
    '--topic-prefix',
    run.db.name,
    '--offsets',
    run.offsets,
    '--log-format',
    'json',
    ...(run.config === undefined ? [] : ['--config', run.config]),
    ...(run.extra ?? []),
  ];
}

/** What the replay of `db`'s stream says about table `table`. */
export interface NatsVerdict {
  lost: number;
  extra: number;
  mismatched: number;
  /** Messages whose event id the stream held before (what JetStream's dedup let through). */
  duplicated: number;
  /** Messages in the stream. */
  events: number;
}

/** Replays `db`'s stream in stream order and compares table `table` with the source. */
export async function natsVerdict(
  server: NatsServer,
  db: TestDatabase,
  table = 'acct',
  sql: pg.Client = db.sql,
): Promise<NatsVerdict> {
  const events = natsEvents(await server.readStream(streamOf(db)));
  const { rows } = await sql.query<Record<string, unknown>>(`select * from ${table}`);
  const source = new Map(rows.map((r) => [JSON.stringify({ id: r.id }), r]));
  const { tables, duplicates } = replay(events);
  const compared = compareRows(tables.get(`${db.name}.public.${table}`), source);
  return { ...compared, duplicated: duplicates, events: events.length };
}

/** The checkpoint pgcdc stored for `db`'s slot in the KV bucket, parsed, or undefined. */
export async function kvCheckpoint(
  server: NatsServer,
  db: TestDatabase,
  bucket = 'pgcdc-offsets',
): Promise<{ lsn: string } | undefined> {
  return server.with(async (nc) => {
    const { Kvm } = await import('@nats-io/kv');
    const { jetstreamManager } = await import('@nats-io/jetstream');
    const jsm = await jetstreamManager(nc);
    const exists = await jsm.streams.info(`KV_${bucket}`).then(
      () => true,
      () => false,
    );
    if (!exists) return undefined;
    const kv = await new Kvm(nc).open(bucket);
    const entry = await kv.get(`${db.name}.${slotOf(db)}`);
    if (entry === null || entry.operation !== 'PUT') return undefined;
    return JSON.parse(entry.string()) as { lsn: string };
  });
}

/** Waits until `proc` confirmed everything the source wrote, then stops it (SIGTERM, exit 0). */
export async function catchUpAndStop(proc: PgcdcProcess, db: TestDatabase): Promise<void> {
  await eventually(() => slotCaughtUp(db), 'pgcdc caught up with the source', 120_000);
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr().slice(-3000));
}

/** Table `acct` with `rows` rows. */
export async function tableWithRows(db: TestDatabase, rows = 300): Promise<void> {
  await db.sql.query(`create table acct (id int primary key, balance int not null, note text)`);
  await db.sql.query(`insert into acct select g, g, 'row ' || g from generate_series(1, $1::int) g`, [rows]);
}

/** Keyed changes: inserts from `first`, updates, deletes, a key change. */
export async function someChanges(db: TestDatabase, first: number): Promise<void> {
  await db.sql.query(`insert into acct select g, g, 'new' from generate_series($1::int, $1::int + 99) g`, [first]);
  await db.sql.query(`update acct set balance = balance + 1, note = 'upd' where id % 3 = 0`);
  await db.sql.query(`delete from acct where id % 7 = 0`);
  await db.sql.query(`update acct set id = $1::int + 500 where id = $1::int + 1`, [first]);
}

/** 0 lost, extra, mismatched and duplicated. */
export function assertExact(verdict: NatsVerdict): void {
  assert.deepEqual(
    { lost: verdict.lost, extra: verdict.extra, mismatched: verdict.mismatched, duplicated: verdict.duplicated },
    { lost: 0, extra: 0, mismatched: 0, duplicated: 0 },
  );
}

/**
 * A fresh database with 300 rows, pgcdc started on `server` with the `sink:` lines `sink` (indented
 * under `sink:`) and `env`, two rounds of changes, caught up and stopped: the replay's verdict.
 */
export async function snapshotAndWorkload(
  server: NatsServer,
  sink: readonly string[] = [],
  env: NodeJS.ProcessEnv = {},
): Promise<{ verdict: NatsVerdict; db: TestDatabase; proc: PgcdcProcess }> {
  const db = await freshDatabase();
  await tableWithRows(db);
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-nats-'));
  const config = await writeRunConfig(dir, sink.length === 0 ? [] : ['sink:', ...sink.map((l) => `  ${l}`)]);
  const proc = startPgcdc(natsRunArgs({ db, url: server.url, offsets: path.join(dir, 'offsets.json'), config }), env);
  await awaitStreaming(proc, 'pgcdc streaming');
  await someChanges(db, 1000);
  await someChanges(db, 2000);
  await catchUpAndStop(proc, db);
  return { verdict: await natsVerdict(server, db), db, proc };
}
