/**
 * Helpers for the Kafka fault tests (kill, fencing, bad input): the `pgcdc run` arguments for the
 * Kafka sink, the events among the records Kafka's Java consumer read back (read_committed), and the
 * verdict of replaying them onto an empty map against the source table.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type pg from 'pg';
import { compareRows, replay, type DeliveredEvent } from './cli.ts';
export { awaitStreaming } from './cli.ts';
import { dumpTopics, type DumpedRecord } from './kafka.ts';
import type { TestDatabase } from './pg.ts';

/** Options of one pgcdc run on the Kafka sink. */
export interface KafkaRun {
  db: TestDatabase;
  bootstrap: string;
  /** `--offsets`: a file path, or `kafka` for none. */
  offsets: string;
  delivery?: 'exactly-once' | 'at-least-once';
  /** Comma-separated `--tables`. */
  tables?: string;
  /** A YAML configuration file. */
  config?: string;
  extra?: readonly string[];
}

export const slotOf = (db: TestDatabase): string => `s_${db.name}`;

export function kafkaRunArgs(run: KafkaRun): string[] {
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
    'kafka',
    '--kafka-bootstrap',
    run.bootstrap,
    '--kafka-delivery',
    run.delivery ?? 'exactly-once',
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

/**
 * A configuration with short retry backoffs (a restarted pgcdc may find its slot still held by the
 * one just killed; that is retried) and a heartbeat every second, so the stored position reaches
 * the server's WAL end when the captured tables are quiet. `more` is appended (YAML lines).
 */
export async function writeRunConfig(dir: string, more: readonly string[] = []): Promise<string> {
  const file = path.join(dir, 'pgcdc.yaml');
  await writeFile(
    file,
    [
      'retry:',
      '  initialDelayMs: 100',
      '  maxDelayMs: 1000',
      '  resetAfterMs: 2000',
      'heartbeat:',
      '  interval: 1000',
      ...more,
      '',
    ].join('\n'),
  );
  return file;
}

/** The pgcdc events among `records` (tombstones and checkpoints left out), in partition order. */
export function kafkaEvents(records: readonly DumpedRecord[]): DeliveredEvent[] {
  return records
    .filter((r) => r.value !== null && !r.topic.endsWith('.pgcdc-offsets'))
    .map((r) => ({
      id: r.headers['pgcdc.id'] as string,
      topic: r.topic,
      key: r.key === null ? null : (JSON.parse(r.key) as Record<string, unknown>),
      value: JSON.parse(r.value as string) as DeliveredEvent['value'],
    }));
}

/** The confirmed_flush_lsn of the database's test slot, or undefined without one. */
export async function slotConfirmed(db: TestDatabase): Promise<string | undefined> {
  const { rows } = await db.sql.query<{ lsn: string | null }>(
    `select confirmed_flush_lsn::text as lsn from pg_replication_slots where slot_name = $1`,
    [slotOf(db)],
  );
  return rows[0]?.lsn ?? undefined;
}

/** What the replay of every committed record of `db`'s topics says about table `acct`. */
export interface KafkaVerdict {
  lost: number;
  extra: number;
  mismatched: number;
  /** Events whose id was read before (at-least-once repeats). */
  duplicated: number;
  /** Events read (repeats included). */
  events: number;
  /** Checkpoint records in the offsets topic. */
  checkpoints: number;
}

/** Replays `db`'s topics as Kafka's Java consumer reads them (read_committed) and compares with `table`. */
export async function kafkaVerdict(
  bootstrap: string,
  db: TestDatabase,
  table = 'acct',
  sql: pg.Client = db.sql,
): Promise<KafkaVerdict> {
  const records = await dumpTopics(bootstrap, `${db.name}\\..*`);
  const events = kafkaEvents(records);
  const { rows } = await sql.query<Record<string, unknown>>(`select * from ${table}`);
  const source = new Map(rows.map((r) => [JSON.stringify({ id: r.id }), r]));
  const { tables, duplicates } = replay(events);
  const compared = compareRows(tables.get(`${db.name}.public.${table}`), source);
  return {
    ...compared,
    duplicated: duplicates,
    events: events.length,
    checkpoints: records.filter((r) => r.topic.endsWith('.pgcdc-offsets')).length,
  };
}

/** The source's current WAL position is covered by the slot's confirmed position (pgcdc caught up). */
export async function slotCaughtUp(db: TestDatabase): Promise<true | undefined> {
  const { rows } = await db.sql.query<{ ok: boolean | null }>(
    `select confirmed_flush_lsn >= pg_current_wal_lsn() as ok from pg_replication_slots where slot_name = $1`,
    [slotOf(db)],
  );
  return rows[0]?.ok ? true : undefined;
}
