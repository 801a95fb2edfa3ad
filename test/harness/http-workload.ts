/**
 * Helpers for the HTTP sink tests that run the real CLI: the `pgcdc run` arguments for the HTTP
 * sink, the `sink:` section of a configuration, and the verdict of replaying what the test receiver
 * accepted onto an empty map against the source table.
 */
import type pg from 'pg';
import { compareRows, replay } from './cli.ts';
import type { TestEndpoint } from './http-endpoint.ts';
import { slotOf } from './kafka-workload.ts';
import type { TestDatabase } from './pg.ts';

export { awaitStreaming, slotCaughtUp, slotConfirmed, writeRunConfig } from './kafka-workload.ts';

/** The environment variable the tests pass the signing secret in. */
export const SECRET_ENV = 'PGCDC_TEST_HTTP_SECRET';

export interface HttpRun {
  db: TestDatabase;
  url: string;
  offsets: string;
  /** Comma-separated `--tables`. */
  tables?: string;
  /** A YAML configuration file (its `sink:` section from `httpSinkSection`). */
  config?: string;
  extra?: readonly string[];
}

export function httpRunArgs(run: HttpRun): string[] {
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
    'http',
    '--http-url',
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

/** A `sink:` section for the HTTP sink (YAML lines), signed with the secret in SECRET_ENV; `more` is indented in. */
export function httpSinkSection(more: readonly string[] = []): string[] {
  return ['sink:', '  kind: http', '  secret:', `    env: ${SECRET_ENV}`, ...more.map((line) => `  ${line}`)];
}

export interface HttpVerdict {
  lost: number;
  extra: number;
  mismatched: number;
  /** Events whose id was accepted before (at-least-once repeats). */
  duplicated: number;
  /** Events accepted (repeats included). */
  events: number;
  /** Requests accepted. */
  requests: number;
}

/** Replays what `endpoint` accepted, in arrival order, and compares it with `table` of `db`. */
export async function httpVerdict(
  endpoint: TestEndpoint,
  db: TestDatabase,
  table = 'acct',
  sql: pg.Client = db.sql,
): Promise<HttpVerdict> {
  const events = endpoint.acceptedEvents();
  const { rows } = await sql.query<Record<string, unknown>>(`select * from ${table}`);
  const source = new Map(rows.map((r) => [JSON.stringify({ id: r.id }), r]));
  const { tables, duplicates } = replay(events);
  const compared = compareRows(tables.get(`${db.name}.public.${table}`), source);
  return { ...compared, duplicated: duplicates, events: events.length, requests: endpoint.accepted().length };
}
