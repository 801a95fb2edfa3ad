/**
 * Helpers for the NATS tests: the `pgcdc run` arguments for the NATS sink, and the verdict of
 * replaying a stream (read back by an ordered consumer, in stream order) onto an empty map against
 * the source table. The slot and run-config helpers are the Kafka tests' (kafka-workload.ts).
 */
import type pg from 'pg';
import { compareRows, replay } from './cli.ts';
import { slotOf } from './kafka-workload.ts';
import { natsEvents, type NatsServer } from './nats.ts';
import type { TestDatabase } from './pg.ts';

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
